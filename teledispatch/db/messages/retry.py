"""Retrying finished messages: new rows of the same job, each naming the one it retries.

The original keeps its outcome; the new row is ``queued`` with no attempt spent. What may
have reached the provider is never retried: every ``unknown`` message (the request may have
left, by definition of the status) and every ``failed`` one whose text says it may have been
sent (``on_ambiguous = "fail"``, a worker lost after sending). ``ix_messages_retry_of``
(unique) makes a message retried at most once, whoever asks and however often.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa

from teledispatch.db.tables import messages_table
from teledispatch.statuses import FAILED, QUEUED, UNKNOWN

#: Statuses a retry may be asked for.
RETRYABLE_STATUSES = (FAILED, UNKNOWN)
#: What every writer of a ``failed`` that may have been sent puts in its text
#: (worker/dispatch/outcomes.py ``ambiguous``, db/messages/reclaim.py).
MAY_HAVE_BEEN_SENT = "may have been sent"


@dataclass(frozen=True)
class RetryPlan:
    """The job's chosen messages by what a retry does with them."""

    #: Provably never left (or refused by the provider): sent again.
    eligible: int
    #: Retried before: their retry is the newer row.
    already_retried: int
    #: ``unknown``, or ``failed`` as "may have been sent": never sent again.
    may_have_been_sent: int


def _chosen(
    rows: sa.FromClause, job_id: str, statuses: Sequence[str], codes: Sequence[str]
) -> list[sa.ColumnElement[bool]]:
    c = rows.c
    where = [c.job_id == job_id, c.status.in_(list(statuses))]
    if codes:
        where.append(c.error_code.in_(list(codes)))
    return where


def _may_have_left(rows: sa.FromClause) -> sa.ColumnElement[bool]:
    c = rows.c
    return sa.or_(
        c.status == UNKNOWN,
        sa.and_(c.error_text.is_not(None), c.error_text.contains(MAY_HAVE_BEEN_SENT)),
    )


def _retried(rows: sa.FromClause) -> sa.ColumnElement[bool]:
    later = messages_table.alias("later")
    return sa.exists().where(later.c.retry_of == rows.c.id)


def retry_plan(
    conn: sa.Connection, job_id: str, statuses: Sequence[str], codes: Sequence[str] = ()
) -> RetryPlan:
    """How many of the job's messages in ``statuses`` (and ``codes``, when given) a retry
    would send, finds retried already, or refuses."""
    o = messages_table.alias("o")
    left, retried = _may_have_left(o), _retried(o)
    kind = sa.case((retried, "retried"), (left, "left"), else_="eligible")
    rows = conn.execute(
        sa.select(kind, sa.func.count()).where(*_chosen(o, job_id, statuses, codes)).group_by(kind)
    ).all()
    found = {str(k): int(n) for k, n in rows}
    return RetryPlan(found.get("eligible", 0), found.get("retried", 0), found.get("left", 0))


def insert_retries(
    conn: sa.Connection,
    job_id: str,
    first_seq: int,
    statuses: Sequence[str],
    codes: Sequence[str],
    now: float,
) -> int:
    """One ``queued`` row per eligible message, numbered from ``first_seq`` (ids
    ``<job>-<seq>``, as stored jobs number theirs); returns how many. One ``INSERT … SELECT``
    however many there are. The caller holds the job's row (see ``db.jobs.lock_total``), so
    two retries of one job number their rows one after the other."""
    o = messages_table.alias("o")
    seq = first_seq - 1 + sa.func.row_number().over(order_by=o.c.seq)
    copied: tuple[str, ...] = ("job_id", "account", "channel", "phone", "group_key")
    copied += ("payload", "priority", "expires_at", "encoding", "segments")
    source = sa.select(
        sa.literal(f"{job_id}-") + sa.cast(seq, sa.String),
        seq,
        *(o.c[name] for name in copied),
        sa.literal(str(QUEUED)),
        sa.literal(now),
        sa.literal(0),
        sa.literal(now),
        sa.literal(now),
        o.c.id,
    ).where(*_chosen(o, job_id, statuses, codes), sa.not_(_may_have_left(o)), sa.not_(_retried(o)))
    columns = ["id", "seq", *copied, "status", "due_at", "attempts", "created_at", "updated_at"]
    stmt = messages_table.insert().from_select([*columns, "retry_of"], source)
    # Without the option SQLAlchemy reports -1 for an INSERT on PostgreSQL.
    return int(conn.execute(stmt, execution_options={"preserve_rowcount": True}).rowcount)


__all__ = ["MAY_HAVE_BEEN_SENT", "RETRYABLE_STATUSES", "RetryPlan", "insert_retries", "retry_plan"]
