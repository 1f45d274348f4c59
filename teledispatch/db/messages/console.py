"""What the operator console reads: per-job counts for a page of jobs, a job's failures by
code with examples, an account's waiting errors, and the "has active messages" test the job
list filters by. Each is bounded by the page, the job or the account's backlog, never the
whole table."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from teledispatch.db.messages._common import m
from teledispatch.db.tables import AnyRow, literal_status
from teledispatch.statuses import (
    ACTIVE_STATUSES,
    DEFERRED,
    EXPIRED,
    FAILED,
    QUEUED,
    UNDELIVERED,
    UNKNOWN,
    UNRECONCILED,
)

#: Statuses the console lists as a job's failures.
FAILURE_STATUSES = (FAILED, UNKNOWN, UNDELIVERED, EXPIRED)


def has_active(job_id: Any) -> sa.ColumnElement[bool]:
    """True for a job (its id column or value) with a message still to finish: waiting,
    in flight, or ``unknown`` and still being reconciled (``ix_messages_job_status``)."""
    return sa.exists().where(
        m.job_id == job_id,
        sa.or_(
            m.status.in_(sorted(ACTIVE_STATUSES)),
            sa.and_(
                m.status == UNKNOWN,
                sa.or_(m.error_code.is_(None), m.error_code != UNRECONCILED),
            ),
        ),
    )


def status_counts_of(conn: sa.Connection, job_ids: Sequence[str]) -> dict[str, dict[str, int]]:
    """``job id → status → messages`` for a page of jobs, in one ``GROUP BY``."""
    found: dict[str, dict[str, int]] = {j: {} for j in job_ids}
    if not job_ids:
        return found
    rows = conn.execute(
        sa.select(m.job_id, m.status, sa.func.count())
        .where(m.job_id.in_(list(job_ids)))
        .group_by(m.job_id, m.status)
    ).all()
    for job_id, status, n in rows:
        found[str(job_id)][str(status)] = int(n)
    return found


def failure_groups(
    conn: sa.Connection, job_id: str, examples: int = 3
) -> list[tuple[AnyRow, list[AnyRow]]]:
    """The job's failed, unknown, undelivered and expired messages by ``(status,
    error_code)``, biggest group first: each ``(status, error_code, n)`` with up to
    ``examples`` ``(id, phone, error_text, updated_at)`` rows."""
    groups = conn.execute(
        sa.select(m.status, m.error_code, sa.func.count().label("n"))
        .where(m.job_id == job_id, m.status.in_(FAILURE_STATUSES))
        .group_by(m.status, m.error_code)
        .order_by(sa.func.count().desc(), m.status, m.error_code)
    ).all()
    out: list[tuple[AnyRow, list[AnyRow]]] = []
    for group in groups:
        code = (
            m.error_code.is_(None) if group.error_code is None else m.error_code == group.error_code
        )
        rows = conn.execute(
            sa.select(m.id, m.phone, m.error_text, m.updated_at)
            .where(m.job_id == job_id, m.status == group.status, code)
            .order_by(m.updated_at.desc(), m.id)
            .limit(examples)
        ).all()
        out.append((group, list(rows)))
    return out


def waiting_errors(conn: sa.Connection, account: str, limit: int = 5) -> list[AnyRow]:
    """The errors the account's backlog waits on (retries, holds, reconciliation), by code:
    ``(error_code, n, last_at, example)``, most recent first. Read through the claim
    index, so it costs what the backlog does."""
    return list(
        conn.execute(
            sa.select(
                m.error_code,
                sa.func.count().label("n"),
                sa.func.max(m.updated_at).label("last_at"),
                sa.func.max(m.error_text).label("example"),
            )
            .where(
                m.account == account,
                m.status.in_(literal_status(QUEUED, DEFERRED, UNKNOWN)),
                m.error_code.is_not(None),
            )
            .group_by(m.error_code)
            .order_by(sa.func.max(m.updated_at).desc())
            .limit(limit)
        ).all()
    )


__all__ = [
    "FAILURE_STATUSES",
    "failure_groups",
    "has_active",
    "status_counts_of",
    "waiting_errors",
]
