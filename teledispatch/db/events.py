"""Every statement on the ``events`` table (the webhook outbox).

Writers (:func:`insert_events`) take the connection of the transaction that changes the
statuses the events report, so an event exists exactly when its change was committed. The
delivery side (``worker/webhooks``) reads an endpoint's pending events in ``seq`` order and
marks them delivered, retried or dead, each in one short statement.
"""

from __future__ import annotations

import hashlib
import json
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


#: The columns an event row is written with, in the order of its JSON array (below).
_WRITTEN = (
    "event_id",
    "account",
    "endpoint",
    "url",
    "type",
    "job_id",
    "message_id",
    "phone",
    "status",
    "provider_id",
    "error_code",
    "error_text",
)
_INTO = (
    f"INSERT INTO events ({', '.join(_WRITTEN)}, occurred_at, state, attempts, next_attempt_at) "
)
# One statement per batch, its rows ONE JSON array of positional arrays unpacked by the server
# (as messages.updates does): a plain executemany sent one protocol message per event, the
# larger part of the worker's CPU for each event. Ordered by array position, so ``seq``
# follows the order given (a message's events stay in order).
_INSERT_PG = sa.text(
    _INTO
    + "SELECT "
    + ", ".join(f"e->>{i}" for i in range(len(_WRITTEN)))
    + ", CAST(:now AS FLOAT8), 'pending', 0, CAST(:now AS FLOAT8) "
    "FROM jsonb_array_elements(CAST(:rows AS JSONB)) WITH ORDINALITY AS t(e, n) ORDER BY n"
)
_INSERT_SQLITE = sa.text(
    _INTO
    + "SELECT "
    + ", ".join(f"json_extract(value, '$[{i}]')" for i in range(len(_WRITTEN)))
    + ", :now, 'pending', 0, :now FROM json_each(:rows) ORDER BY key"
)


def _write(conn: sa.Connection, rows: Sequence[Sequence[Any]], now: float) -> None:
    """Insert pending events, each given by its ``_WRITTEN`` values, due ``now``."""
    stmt = _INSERT_PG if conn.dialect.name == "postgresql" else _INSERT_SQLITE
    conn.execute(stmt, {"rows": json.dumps(rows, ensure_ascii=False), "now": now})


def _event_id() -> str:
    return "evt_" + uuid.uuid4().hex


def insert_events(
    conn: sa.Connection,
    account_by_job: Mapping[str, tuple[str, str]],
    rows: Sequence[Any],
    now: float,
) -> int:
    """One ``message.<status>`` event per row of ``(id, job_id, phone, status, provider_id,
    error_code, error_text)`` whose job is in ``account_by_job`` (job id → (account, url)),
    in the order given; returns how many."""
    # (account, endpoint key, url) per job: the key hashed once, not per event.
    targets: dict[str, tuple[str, str, str]] = {}
    records = []
    for row in rows:
        target = targets.get(row[1])
        if target is None:
            found = account_by_job.get(row[1])
            if found is None:
                continue
            target = targets[row[1]] = (found[0], endpoint_key(found[1]), found[1])
        status = str(row[3])
        event = (_event_id(), *target, f"message.{status}", row[1], row[0], row[2], status)
        records.append((*event, row[4], row[5], row[6]))
    if records:
        _write(conn, records, now)
    return len(records)


def insert_job_done(conn: sa.Connection, job_id: str, account: str, url: str, now: float) -> None:
    target = (account, endpoint_key(url), url)
    _write(
        conn, [(_event_id(), *target, "job.done", job_id, None, None, None, None, None, None)], now
    )


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


def _among(conn: sa.Connection, seqs: Sequence[int]) -> sa.ColumnElement[bool]:
    """``seq`` is one of ``seqs``. PostgreSQL: one array parameter, as an ``IN`` list of a
    batch's hundreds of parameters made a statement too long for psycopg's query cache (it
    parsed each one again) and a larger one for the server to parse."""
    if conn.dialect.name == "postgresql":
        # Imported here: a SQLite process never loads this dialect (see upsert_insert).
        from sqlalchemy.dialects.postgresql import ARRAY

        return e.seq == sa.any_(sa.bindparam("seqs", list(seqs), type_=ARRAY(sa.Integer)))
    return e.seq.in_(list(seqs))


def _batch_of(
    conn: sa.Connection, endpoint: str, seqs: Sequence[int]
) -> list[sa.ColumnElement[bool]]:
    """The pending events ``seqs`` of ``endpoint``: a head batch (:func:`head_batch`).

    The endpoint and the batch's ``seq`` range make the scan the batch's own stretch of
    ``ix_events_pending``. With ``seq`` and state alone, a planner whose statistics predate
    a backlog (a table filled faster than autovacuum analyses it: every burst, every
    receiver back from an outage) read every pending event of every endpoint for each
    batch, so the drain slowed as its backlog grew."""
    return [
        e.endpoint == endpoint,
        e.state == sa.literal_column("'pending'"),
        e.seq.between(min(seqs), max(seqs)),
        _among(conn, seqs),
    ]


def mark_delivered(engine: Engine, endpoint: str, seqs: Sequence[int], now: float) -> None:
    with engine.begin() as conn:
        conn.execute(
            sa.update(events_table)
            .where(*_batch_of(conn, endpoint, seqs))
            .values(state=DELIVERED, delivered_at=now, attempts=e.attempts + 1)
        )


def mark_failed(
    engine: Engine,
    endpoint: str,
    seqs: Sequence[int],
    now: float,
    next_at: float,
    error: str,
    dead: bool,
) -> None:
    """A failed attempt: retried at ``next_at``, or dead-lettered."""
    with engine.begin() as conn:
        conn.execute(
            sa.update(events_table)
            .where(*_batch_of(conn, endpoint, seqs))
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
