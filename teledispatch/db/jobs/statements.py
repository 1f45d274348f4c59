"""The ``jobs`` statements built with SQLAlchemy (the package's docstring says how to use them)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from teledispatch.db.tables import AnyRow, jobs_table

j = jobs_table.c


def insert_jobs(conn: sa.Connection, rows: Sequence[Mapping[str, Any]]) -> None:
    """New jobs' rows; an idempotency key used before raises ``IntegrityError``."""
    conn.execute(jobs_table.insert(), list(rows))


def get_job(conn: sa.Connection, job_id: str) -> AnyRow | None:
    """The job's whole row, or None."""
    return conn.execute(sa.select(jobs_table).where(j.id == job_id)).first()


def weights(conn: sa.Connection, job_ids: Sequence[str]) -> dict[str, float]:
    """Each job's ``weight`` (its share of its lane); unknown ids are left out."""
    if not job_ids:
        return {}
    rows = conn.execute(sa.select(j.id, j.weight).where(j.id.in_(list(job_ids)))).all()
    return {str(i): float(w) for i, w in rows}


def by_idempotency_key(conn: sa.Connection, key: str) -> AnyRow:
    """``(id, content_hash, total)`` of the job created with ``key`` (which must exist)."""
    return conn.execute(
        sa.select(j.id, j.content_hash, j.total).where(j.idempotency_key == key)
    ).one()


def storing_header(conn: sa.Connection, job_id: str) -> AnyRow:
    """``(account, channel, cancelled_at, priority, expires_at, quiet_hours)``: what storing
    a part of the job needs."""
    return conn.execute(
        sa.select(
            j.account, j.channel, j.cancelled_at, j.priority, j.expires_at, j.quiet_hours
        ).where(j.id == job_id)
    ).one()


def quiet_hours_of(conn: sa.Connection, job_ids: Sequence[str]) -> dict[str, str]:
    """``job id → quiet hours`` of those of ``job_ids`` that have a window."""
    rows = conn.execute(
        sa.select(j.id, j.quiet_hours).where(j.id.in_(job_ids), j.quiet_hours.is_not(None))
    )
    return {row[0]: row[1] for row in rows}


def count_existing(conn: sa.Connection, job_ids: Sequence[str]) -> int:
    """How many of ``job_ids`` have a row."""
    return int(conn.execute(sa.select(sa.func.count()).where(j.id.in_(job_ids))).scalar_one())


def mark_cancelled(conn: sa.Connection, job_id: str, now: float) -> bool:
    """Record that the job was cancelled (the first cancel's time stands); False if there is
    no such job. Parts stored afterwards are written ``cancelled``."""
    found = conn.execute(
        sa.update(jobs_table)
        .where(j.id == job_id)
        .values(cancelled_at=sa.func.coalesce(j.cancelled_at, now))
    ).rowcount
    return bool(found)


def lock_total(conn: sa.Connection, job_id: str) -> AnyRow | None:
    """``(total, account, cancelled_at, expires_at)`` of the job, its row now held by this
    transaction
    (a no-op UPDATE: a write lock on SQLite as on PostgreSQL, where ``FOR UPDATE`` would be
    nothing on SQLite); None if there is no such job."""
    return conn.execute(
        sa.update(jobs_table)
        .where(j.id == job_id)
        .values(total=j.total)
        .returning(j.total, j.account, j.cancelled_at, j.expires_at)
    ).first()


def add_to_total(conn: sa.Connection, job_id: str, n: int) -> None:
    """The job has ``n`` more messages (retries): counted in its total."""
    conn.execute(sa.update(jobs_table).where(j.id == job_id).values(total=j.total + n))


@dataclass(frozen=True)
class JobFilter:
    """What the job list may be narrowed by; None: any."""

    #: The accounts to list (a key's scope, or the one asked for).
    accounts: frozenset[str] | None = None
    priority: int | None = None
    created_from: float | None = None
    created_to: float | None = None
    #: ``active``, ``done`` or ``cancelled``.
    state: str | None = None


def list_jobs(
    conn: sa.Connection,
    where: JobFilter,
    has_active: Callable[[Any], sa.ColumnElement[bool]],
    *,
    before: str | None = None,
    limit: int = 50,
) -> list[AnyRow]:
    """Jobs newest first, after the job ``before`` (the previous page's last), as ``(id,
    account, channel, total, priority, created_at, cancelled_at, active)``. ``has_active``
    is the messages' test of a job id (``db.messages.has_active``): this module writes no
    SQL on messages."""
    active = has_active(j.id)
    query = sa.select(
        j.id,
        j.account,
        j.channel,
        j.total,
        j.priority,
        j.created_at,
        j.cancelled_at,
        active.label("active"),
    )
    if where.accounts is not None:
        query = query.where(j.account.in_(sorted(where.accounts)))
    if where.priority is not None:
        query = query.where(j.priority == where.priority)
    if where.created_from is not None:
        query = query.where(j.created_at >= where.created_from)
    if where.created_to is not None:
        query = query.where(j.created_at < where.created_to)
    if where.state == "cancelled":
        query = query.where(j.cancelled_at.is_not(None))
    elif where.state == "active":
        query = query.where(active)
    elif where.state == "done":
        query = query.where(sa.not_(active))
    if before is not None:
        mark = sa.select(j.created_at).where(j.id == before).scalar_subquery()
        query = query.where(
            sa.or_(j.created_at < mark, sa.and_(j.created_at == mark, j.id < before))
        )
    return list(conn.execute(query.order_by(j.created_at.desc(), j.id.desc()).limit(limit)).all())


def signer_of(account: str, route: str | None) -> str:
    """Whose ``callback_secret`` signs a job's webhook events (the events' ``account``): a
    routed job's route (``account@route``: the route's secret, else the account's), else
    its account. Route names cannot hold ``@`` (``teledispatch.routes``)."""
    return f"{account}@{route}" if route else account


def callbacks(conn: sa.Connection, job_ids: Sequence[str]) -> dict[str, tuple[str, str | None]]:
    """``job id → (signer, callback_url)`` for the given jobs that exist (:func:`signer_of`)."""
    rows = conn.execute(
        sa.select(j.id, j.account, j.callback_url, j.route).where(j.id.in_(list(job_ids)))
    ).all()
    return {str(r[0]): (signer_of(str(r[1]), r[3]), r[2]) for r in rows}


def open_with_callback(conn: sa.Connection, limit: int) -> list[AnyRow]:
    """``(id, account, callback_url, total, route)`` of jobs with a callback whose
    ``job.done`` event is not written yet (the partial ``ix_jobs_open_callback`` holds only
    these)."""
    return list(
        conn.execute(
            sa.select(j.id, j.account, j.callback_url, j.total, j.route)
            .where(j.callback_url.is_not(None), j.done_at.is_(None))
            .order_by(j.created_at)
            .limit(limit)
        ).all()
    )


def created_before(conn: sa.Connection, cutoff: float, after: str, limit: int) -> list[AnyRow]:
    """``(id, total, account, callback_url, done_at, created_at)`` of jobs created before
    ``cutoff``, in id order after ``after``."""
    return list(
        conn.execute(
            sa.select(j.id, j.total, j.account, j.callback_url, j.done_at, j.created_at)
            .where(j.created_at < cutoff, j.id > after)
            .order_by(j.id)
            .limit(limit)
        ).all()
    )


def delete_job(conn: sa.Connection, job_id: str) -> None:
    conn.execute(sa.delete(jobs_table).where(j.id == job_id))


def claim_done(conn: sa.Connection, job_id: str, now: float) -> bool:
    """Record that the job's ``job.done`` event is written; False if it already was."""
    found = conn.execute(
        sa.update(jobs_table).where(j.id == job_id, j.done_at.is_(None)).values(done_at=now)
    ).rowcount
    return bool(found)


__all__ = [
    "JobFilter",
    "add_to_total",
    "by_idempotency_key",
    "callbacks",
    "claim_done",
    "count_existing",
    "created_before",
    "delete_job",
    "get_job",
    "insert_jobs",
    "list_jobs",
    "lock_total",
    "mark_cancelled",
    "open_with_callback",
    "quiet_hours_of",
    "storing_header",
]
