"""Every statement on the ``events`` table (the webhook outbox).

Writers (:func:`insert_events`) take the connection of the transaction that changes the
statuses the events report, so an event exists exactly when its change was committed. The
delivery side (``worker/webhooks``) reads an endpoint's pending events in ``seq`` order and
marks them delivered, retried or dead, each in one short statement.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from teledispatch.db.tables import AnyRow, events_table

e = events_table.c

PENDING = "pending"
DELIVERED = "delivered"
DEAD = "dead"


def endpoint_key(url: str) -> str:
    """The name of an endpoint in task arguments and logs: a URL may carry a token."""
    return hashlib.sha256(url.encode()).hexdigest()[:32]


def insert_events(
    conn: sa.Connection,
    account_by_job: Mapping[str, tuple[str, str]],
    rows: Sequence[Any],
    now: float,
) -> int:
    """One ``message.<status>`` event per row of ``(id, job_id, phone, status, provider_id,
    error_code, error_text)`` whose job is in ``account_by_job`` (job id → (account, url)),
    in the order given; returns how many."""
    # One template per job (its endpoint key hashed once), copied per row.
    bases: dict[str, dict[str, Any]] = {}
    records = []
    for row in rows:
        base = bases.get(row[1])
        if base is None:
            target = account_by_job.get(row[1])
            if target is None:
                continue
            base = bases[row[1]] = _record(target[0], target[1], "", row[1], now)
        records.append(
            base
            | {
                "event_id": "evt_" + uuid.uuid4().hex,
                "type": f"message.{row[3]}",
                "message_id": row[0],
                "phone": row[2],
                "status": str(row[3]),
                "provider_id": row[4],
                "error_code": row[5],
                "error_text": row[6],
            }
        )
    if records:
        conn.execute(events_table.insert(), records)
    return len(records)


def insert_job_done(conn: sa.Connection, job_id: str, account: str, url: str, now: float) -> None:
    conn.execute(events_table.insert(), [_record(account, url, "job.done", job_id, now)])


def _record(account: str, url: str, type_: str, job_id: str, now: float) -> dict[str, Any]:
    return {
        "event_id": "evt_" + uuid.uuid4().hex,
        "account": account,
        "endpoint": endpoint_key(url),
        "url": url,
        "type": type_,
        "job_id": job_id,
        "message_id": None,
        "phone": None,
        "status": None,
        "provider_id": None,
        "error_code": None,
        "error_text": None,
        "occurred_at": now,
        "state": PENDING,
        "attempts": 0,
        "next_attempt_at": now,
    }


# --- delivery -------------------------------------------------------------------------------


def due_endpoints(engine: Engine, now: float, limit: int = 1000) -> list[str]:
    """Endpoints whose oldest pending event is due for an attempt."""
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(e.endpoint)
            # Verbatim, as in head_batch: a partial index answers only a literal state.
            .where(e.state == sa.literal_column("'pending'"), e.next_attempt_at <= now)
            .group_by(e.endpoint)
            .limit(limit)
        ).all()
    return [str(r[0]) for r in rows]


def head_batch(engine: Engine, endpoint: str, limit: int) -> list[AnyRow]:
    """The endpoint's first ``limit`` pending events in order (due or not: a later event must
    not overtake an earlier one still waiting for its retry)."""
    with engine.connect() as conn:
        return list(
            conn.execute(
                sa.select(events_table)
                .where(e.endpoint == endpoint, e.state == sa.literal_column("'pending'"))
                .order_by(e.seq)
                .limit(limit)
            ).all()
        )


def mark_delivered(engine: Engine, seqs: Sequence[int], now: float) -> None:
    with engine.begin() as conn:
        conn.execute(
            sa.update(events_table)
            .where(e.seq.in_(list(seqs)), e.state == PENDING)
            .values(state=DELIVERED, delivered_at=now, attempts=e.attempts + 1)
        )


def mark_failed(
    engine: Engine, seqs: Sequence[int], now: float, next_at: float, error: str, dead: bool
) -> None:
    """A failed attempt: retried at ``next_at``, or dead-lettered."""
    with engine.begin() as conn:
        conn.execute(
            sa.update(events_table)
            .where(e.seq.in_(list(seqs)), e.state == PENDING)
            .values(
                state=DEAD if dead else PENDING,
                attempts=e.attempts + 1,
                next_attempt_at=next_at,
                first_failed_at=sa.func.coalesce(e.first_failed_at, now),
                last_error=error[:200],
            )
        )


def counts(engine: Engine) -> dict[str, int]:
    """Events per state."""
    with engine.connect() as conn:
        rows = conn.execute(sa.select(e.state, sa.func.count()).group_by(e.state)).all()
    return {str(s): int(n) for s, n in rows}


def backlog(engine: Engine) -> list[AnyRow]:
    """``(account, state, events, oldest occurred_at)`` of pending and dead events, for the
    API's ``/metrics``: index ranges on ``ix_events_state``, never the delivered history."""
    with engine.connect() as conn:
        return list(
            conn.execute(
                sa.select(e.account, e.state, sa.func.count(), sa.func.min(e.occurred_at))
                .where(e.state.in_([sa.literal_column("'pending'"), sa.literal_column("'dead'")]))
                .group_by(e.account, e.state)
            ).all()
        )


def list_dead(engine: Engine, limit: int = 100) -> list[AnyRow]:
    with engine.connect() as conn:
        return list(
            conn.execute(
                sa.select(e.event_id, e.endpoint, e.type, e.job_id, e.message_id, e.last_error)
                .where(e.state == DEAD)
                .order_by(e.seq)
                .limit(limit)
            ).all()
        )


def replay_dead(engine: Engine, now: float, job_id: str | None = None) -> int:
    """Dead events go back to pending, due now, with a fresh retry window."""
    where = [e.state == DEAD]
    if job_id is not None:
        where.append(e.job_id == job_id)
    with engine.begin() as conn:
        result = conn.execute(
            sa.update(events_table)
            .where(*where)
            .values(state=PENDING, next_attempt_at=now, first_failed_at=None, attempts=0)
        )
    return int(result.rowcount or 0)


def job_events(conn: sa.Connection, job_id: str) -> list[AnyRow]:
    """The job's events in order (tests, lookups)."""
    return list(conn.execute(sa.select(events_table).where(e.job_id == job_id).order_by(e.seq)))


def delete_job_events(engine: Engine, job_id: str, limit: int) -> int:
    """Delete up to ``limit`` of the job's events (any state) in one short transaction."""
    with engine.begin() as conn:
        seqs = sa.select(e.seq).where(e.job_id == job_id).limit(limit).scalar_subquery()
        return int(conn.execute(sa.delete(events_table).where(e.seq.in_(seqs))).rowcount or 0)


def pending_for_job(conn: sa.Connection, job_id: str) -> int:
    """The job's events not yet delivered or dead-lettered (a purge waits for them)."""
    return int(
        conn.execute(
            sa.select(sa.func.count()).where(e.job_id == job_id, e.state == PENDING)
        ).scalar_one()
    )


__all__ = [
    "DEAD",
    "DELIVERED",
    "PENDING",
    "backlog",
    "counts",
    "delete_job_events",
    "due_endpoints",
    "endpoint_key",
    "head_batch",
    "insert_events",
    "insert_job_done",
    "job_events",
    "list_dead",
    "mark_delivered",
    "mark_failed",
    "pending_for_job",
    "replay_dead",
]
