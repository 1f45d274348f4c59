"""The worker's departure compare-and-set and the sweep's reclaim serialize on the batch row,
on SQLite and PostgreSQL (issue #5's invariant: a lost batch that departed is reconciled,
one that did not is requeued, and a worker never sends a batch the sweep has taken back).

The worker's clock is set before the lease's end and the sweep's after it, as between two
machines whose clocks disagree: the lease check alone cannot decide, the row lock must.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from teledispatch.config import AccountConfig, parse_config
from teledispatch.db import messages as repo
from teledispatch.db.tables import batches_table, messages_table
from tests.support import due_job

m = messages_table.c
b = batches_table.c
LEASE_END = 1_000_000.0
WORKER_NOW = LEASE_END - 1  # the lease still holds by the worker's clock
SWEEP_NOW = LEASE_END + 1  # and has expired by the sweep's


def _account() -> AccountConfig:
    table = {"channel": "nxcloud.sms", "base_url": "http://x", "max_attempts": 5}
    return parse_config({"accounts": {"nx": table}})["nx"]


def _claim(engine: Engine, limit: int) -> repo.Claim:
    claim = repo.claim(engine, "nx", limit, lease_s=LEASE_END - 10, now=10)
    assert claim.messages
    return claim


def _statuses(engine: Engine, claim: repo.Claim) -> set[str]:
    ids = [x.id for x in claim.messages]
    with engine.connect() as conn:
        return set(conn.execute(sa.select(m.status).where(m.id.in_(ids))).scalars())


def _in_thread(fn: Any, *args: Any) -> tuple[threading.Thread, list[Any]]:
    out: list[Any] = []
    thread = threading.Thread(target=lambda: out.append(fn(*args)), daemon=True)
    thread.start()
    return thread, out


def _blocked_in_thread(
    engine: Engine, holder: sa.Connection, fn: Any, *args: Any
) -> tuple[threading.Thread, list[Any]]:
    """Run ``fn`` in a thread and return once it waits for the lock ``holder`` holds.

    Awaited, not slept on: PostgreSQL shows the waiting backend in ``pg_stat_activity``;
    SQLite has no such view, so the thread's ``BEGIN IMMEDIATE`` (which cannot take the
    write lock while ``holder``'s transaction is open) is the event waited for.
    """
    began = threading.Event()
    caller = threading.get_ident()

    def on_execute(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        if threading.get_ident() != caller and statement.startswith("BEGIN IMMEDIATE"):
            began.set()

    sa.event.listen(engine, "before_cursor_execute", on_execute)
    try:
        thread, out = _in_thread(fn, *args)
        if engine.dialect.name == "postgresql":
            waiting = sa.text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
            )
            deadline = time.monotonic() + 30
            # The holder is inside its transaction, where PostgreSQL keeps showing the first
            # snapshot of the activity view unless told to take a new one.
            fresh = sa.text("SELECT pg_stat_clear_snapshot()")
            while holder.execute(fresh) and not holder.execute(waiting).scalar_one():
                assert time.monotonic() < deadline, "the thread never waited for the lock"
                assert thread.is_alive(), f"the thread finished without waiting: {out}"
                time.sleep(0.005)
        else:
            assert began.wait(30), "the thread never asked for the write lock"
    finally:
        sa.event.remove(engine, "before_cursor_execute", on_execute)
    assert thread.is_alive(), f"the thread finished without waiting: {out}"
    return thread, out


def test_departure_waits_for_a_reclaim_in_progress_and_then_fails(database_url: str) -> None:
    engine = due_job(database_url, 4)
    claim = _claim(engine, 4)
    with engine.connect() as conn, conn.begin():
        # The sweep's first step, left uncommitted: it holds the batch row.
        conn.execute(sa.delete(batches_table).where(b.claim_token == claim.token))
        thread, out = _blocked_in_thread(
            engine, conn, repo.mark_departing, engine, claim.token, "", WORKER_NOW
        )
    thread.join(30)
    assert out == [False]


def test_reclaim_waits_for_a_departure_in_progress_and_reconciles(database_url: str) -> None:
    engine = due_job(database_url, 4)
    claim = _claim(engine, 4)
    with engine.connect() as conn, conn.begin():
        # The worker's compare-and-set, left uncommitted: it holds the batch row.
        conn.execute(
            sa.update(batches_table)
            .where(b.claim_token == claim.token, b.departed_at.is_(None))
            .values(departed_at=WORKER_NOW)
        )
        thread, out = _blocked_in_thread(
            engine, conn, repo.reclaim_expired, engine, [_account()], SWEEP_NOW
        )
    thread.join(30)
    assert out == [4]
    assert _statuses(engine, claim) == {"unknown"}


def test_racing_departures_and_reclaims_always_agree(database_url: str) -> None:
    """Free-running race, many rounds: whichever wins, the outcome matches it."""
    engine = due_job(database_url, 60)
    for _ in range(30):
        claim = _claim(engine, 2)
        start = threading.Barrier(2)

        def depart(token: str = claim.token, go: threading.Barrier = start) -> bool:
            go.wait()
            return repo.mark_departing(engine, token, "", WORKER_NOW)

        def sweep(go: threading.Barrier = start) -> int:
            go.wait()
            return repo.reclaim_expired(engine, [_account()], SWEEP_NOW)

        t1, departed = _in_thread(depart)
        t2, _ = _in_thread(sweep)
        t1.join(30)
        t2.join(30)
        if departed == [True]:
            assert _statuses(engine, claim) == {"unknown"}
        else:
            assert departed == [False]
            assert _statuses(engine, claim) == {"queued"}
        with engine.begin() as conn:  # out of the way of the next round's claim
            conn.execute(
                sa.update(messages_table)
                .where(m.id.in_([x.id for x in claim.messages]))
                .values(status="failed")
            )


def test_a_claim_from_before_the_upgrade_that_departed_is_reconciled(database_url: str) -> None:
    """Rolling upgrade: a worker of the previous release marks its departure on the messages
    (``sent_at``), not on the batch row the migration gave its claim. The sweep must still
    see that it left, or the batch would be requeued and sent twice."""
    engine = due_job(database_url, 4)
    claim = _claim(engine, 4)
    with engine.begin() as conn:  # what the old worker's mark_departing wrote
        ids = [x.id for x in claim.messages]
        conn.execute(sa.update(messages_table).where(m.id.in_(ids)).values(sent_at=WORKER_NOW))
    repo.reclaim_expired(engine, [_account()], SWEEP_NOW)
    assert _statuses(engine, claim) == {"unknown"}


def test_a_claim_that_never_departed_is_requeued(database_url: str) -> None:
    engine = due_job(database_url, 4)
    claim = _claim(engine, 4)
    repo.reclaim_expired(engine, [_account()], SWEEP_NOW)
    assert _statuses(engine, claim) == {"queued"}


def test_a_finishing_outcome_and_a_sweep_of_the_same_batch_do_not_deadlock(
    database_url: str,
) -> None:
    """The worker writes its outcomes (and deletes the batch row) just as the sweep takes the
    expired batch back. Both must lock the batch row before the messages: in the other order
    PostgreSQL found a deadlock and aborted one of them."""
    engine = due_job(database_url, 2)
    claim = _claim(engine, 2)
    group = claim.messages[0].group_key
    updates = [repo.Update.sent(x.id, x.id) for x in claim.messages]
    with engine.connect() as sweep, sweep.begin():
        # The sweep's first step: the expired batch row, deleted (and locked).
        sweep.execute(sa.delete(batches_table).where(b.claim_token == claim.token))
        thread, out = _blocked_in_thread(
            engine, sweep, lambda: repo.apply(engine, claim.token, updates, 5.0, finish=group)
        )
        # Its second: the messages, back to the queue (never departed). With the worker
        # holding them while it waited for the batch row, this waited for the worker.
        sweep.execute(
            sa.update(messages_table)
            .where(m.claim_token == claim.token, m.status == "sending")
            .values(status="queued")
        )
    thread.join(30)
    assert out == [0]  # the sweep came first: the stale outcomes change nothing
    assert _statuses(engine, claim) == {"queued"}
