"""Expiry of waiting messages past their ``expires_at``, and retention's deletes."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from teledispatch.db.messages._common import m, still_working
from teledispatch.db.messages.outbox import record_changes
from teledispatch.db.tables import batches_table, messages_table
from teledispatch.statuses import (
    DEFERRED,
    EXPIRED,
    QUEUED,
)

#: The error code of a message that expired before it was sent.
EXPIRED_CODE = "expired"


def expire_unsent(engine: Engine, now: float, limit: int = 10_000) -> int:
    """The sweep: ``queued`` and ``deferred`` rows (waiting, held by a window or for a retry)
    past their expiry become ``expired``; returns how many. Bounded per call, so one sweep
    stays short; the next one takes the rest. Their webhook events are written in the same
    transaction, like every other status change's."""
    # The WHERE repeats the partial index's predicate verbatim, so SQLite uses it too.
    where = sa.text("expires_at IS NOT NULL AND status IN ('queued', 'deferred')")
    due = (
        sa.select(m.id)
        .where(where, m.expires_at <= now)
        .order_by(m.expires_at)
        .limit(limit)
        .scalar_subquery()
    )
    with engine.begin() as conn:
        done = conn.execute(
            sa.update(messages_table)
            .where(m.id.in_(due), m.status.in_([QUEUED, DEFERRED]))
            .values(
                status=EXPIRED,
                error_code=EXPIRED_CODE,
                error_text="not sent before its expiry",
                updated_at=now,
            )
            .returning(m.id, m.job_id)
        ).all()
        record_changes(conn, done, now)
    return len(done)


# --- retention -----------------------------------------------------------------------------


def delete_job_messages(engine: Engine, job_id: str, limit: int) -> int:
    """Delete up to ``limit`` of the job's finished messages in one short transaction;
    returns how many. Small batches: a purge must never hold locks long enough to slow
    dispatch. A message still being worked on is never deleted, whatever the caller saw."""
    with engine.begin() as conn:
        ids = (
            sa.select(m.id)
            .where(m.job_id == job_id, sa.not_(still_working()))
            .limit(limit)
            .scalar_subquery()
        )
        return int(conn.execute(sa.delete(messages_table).where(m.id.in_(ids))).rowcount or 0)


# Another session of this database running a statement (an enqueue's COPY, a claim, an
# outcome write, an API read); autovacuum and the other background processes are not client
# backends.
_OTHERS_ACTIVE_PG = (
    "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE datname = current_database() "
    "AND state = 'active' AND backend_type = 'client backend' AND pid <> pg_backend_pid())"
)


def dispatch_at_work(engine: Engine) -> bool:
    """Dispatch is at work: some request is between its claim and its outcome (a ``batches``
    row: a handful at most, so one probe of a tiny table), or, on PostgreSQL, another
    session is running a statement (a job being stored has no request in flight yet).
    Retention gives way while it is."""
    with engine.connect() as conn:
        if conn.execute(sa.select(sa.literal(1)).select_from(batches_table).limit(1)).first():
            return True
        if conn.dialect.name != "postgresql":
            return False
        return bool(conn.exec_driver_sql(_OTHERS_ACTIVE_PG).scalar())
