"""The producer's writes: storing a job's recipients (INSERT or COPY) and cancelling."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from teledispatch.db.engine import upsert_insert
from teledispatch.db.messages._common import m
from teledispatch.db.messages.outbox import _targets, record_changes
from teledispatch.db.tables import messages_table
from teledispatch.statuses import (
    CANCELLED,
    CLAIMABLE,
)

# --- storing a job's recipients (the producer) -------------------------------------------

#: From this many rows a new job's part goes by ``COPY`` on PostgreSQL (below it, the extra
#: round trip of a COPY costs more than it saves).
COPY_MIN_ROWS = 64


def insert_messages(
    conn: sa.Connection, rows: Sequence[dict[str, Any]], *, fresh: bool = False
) -> None:
    """Insert, skipping ids already present: storing the same part twice changes nothing.

    ``fresh`` promises that none of the ids can exist yet (a job id minted a moment ago). On
    PostgreSQL such rows go by ``COPY``, several times cheaper per row than INSERT, for the
    producer and for the server; ``COPY`` cannot skip conflicts, hence the promise.
    """
    if not rows:
        return
    if fresh and conn.dialect.name == "postgresql" and len(rows) >= COPY_MIN_ROWS:
        _copy_messages(conn, rows)
        return
    stmt = upsert_insert(conn)(messages_table).on_conflict_do_nothing(index_elements=["id"])
    conn.execute(stmt, list(rows))


def _copy_messages(conn: sa.Connection, rows: Sequence[dict[str, Any]]) -> None:
    columns = list(rows[0])
    preparer = conn.dialect.identifier_preparer
    names = ", ".join(preparer.quote(c) for c in columns)
    sql = f"COPY {preparer.quote(messages_table.name)} ({names}) FROM STDIN"
    raw: Any = conn.connection.dbapi_connection
    with raw.cursor() as cur, cur.copy(sql) as copy:
        for row in rows:
            copy.write_row([row[c] for c in columns])


# --- cancelling (the producer) -------------------------------------------------------------


def cancel_unclaimed(conn: sa.Connection, job_id: str, now: float) -> int:
    """The job's messages no worker has claimed become ``cancelled``; returns how many.

    The status condition is the compare-and-set: a row a worker claimed a moment ago is
    ``sending`` and is not touched."""
    stmt = (
        sa.update(messages_table)
        .where(m.job_id == job_id, m.status.in_(CLAIMABLE))
        .values(status=CANCELLED, updated_at=now, error_code=None, error_text=None)
    )
    if not _targets(conn, [job_id]):
        # No callback: no RETURNING of what may be a million ids.
        return int(conn.execute(stmt).rowcount or 0)
    done = conn.execute(stmt.returning(m.id, m.job_id)).all()
    record_changes(conn, done, now)
    return len(done)
