"""Reading outcomes back: by job, by recipient, by provider message id.

Counts come from the messages table itself (``GROUP BY status`` on an index), never from a
counter that a crash could leave wrong.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from teledispatch.config import Settings, settings
from teledispatch.db.migrate import ensure_schema
from teledispatch.db.tables import (
    ACTIVE_STATUSES,
    UNKNOWN,
    UNRECONCILED,
    get_engine,
    jobs_table,
    messages_table,
)
from teledispatch.errors import Error


class JobNotFound(Error, LookupError):
    """No job has this id."""


def iso(epoch: float | None) -> str | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, UTC).isoformat()


@dataclass(frozen=True)
class JobStatus:
    job_id: str
    account: str
    channel: str
    total: int
    #: Recipients a worker has written to the database so far.
    accepted: int
    counts: dict[str, int]
    done: bool
    created_at: str | None
    cancelled: bool = False
    #: Earliest time a not-yet-due message becomes due (retries, deferrals, not_before).
    next_due_at: str | None = None
    eta: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class MessageView:
    id: str
    job_id: str
    account: str
    channel: str
    phone: str
    status: str
    attempts: int
    provider_id: str | None
    error_code: str | None
    error_text: str | None
    created_at: str | None
    updated_at: str | None
    sent_at: str | None
    due_at: str | None
    fields: dict[str, Any] = field(default_factory=dict)
    #: When a delivery receipt or call record settled it.
    final_at: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _engine(cfg: Settings | None) -> sa.Engine:
    url = (cfg or settings()).database_url
    ensure_schema(url)
    return get_engine(url)


def job_status(job_id: str, *, cfg: Settings | None = None) -> JobStatus:
    engine = _engine(cfg)
    m = messages_table.c
    with engine.connect() as conn:
        job = conn.execute(sa.select(jobs_table).where(jobs_table.c.id == job_id)).first()
        if job is None:
            raise JobNotFound(f"no job {job_id!r}")
        rows = conn.execute(
            sa.select(m.status, sa.func.count()).where(m.job_id == job_id).group_by(m.status)
        ).all()
        counts = {str(status): int(n) for status, n in rows}
        reconciling = 0
        if counts.get(UNKNOWN):
            reconciling = conn.execute(
                sa.select(sa.func.count()).where(
                    m.job_id == job_id,
                    m.status == UNKNOWN,
                    sa.or_(m.error_code.is_(None), m.error_code != UNRECONCILED),
                )
            ).scalar_one()
        next_due = conn.execute(
            sa.select(sa.func.min(m.due_at)).where(
                m.job_id == job_id, m.status.in_(("queued", "deferred")), m.due_at > time.time()
            )
        ).scalar()
    accepted = sum(counts.values())
    active = sum(n for s, n in counts.items() if s in ACTIVE_STATUSES)
    return JobStatus(
        job_id=job.id,
        account=job.account,
        channel=job.channel,
        total=job.total,
        accepted=accepted,
        counts=dict(sorted(counts.items())),
        done=accepted >= job.total and active == 0 and reconciling == 0,
        created_at=iso(job.created_at),
        cancelled=job.cancelled_at is not None,
        next_due_at=iso(next_due),
    )


def _view(row: Any) -> MessageView:
    try:
        fields = json.loads(row.payload)
    except ValueError:
        fields = {}
    return MessageView(
        id=row.id,
        job_id=row.job_id,
        account=row.account,
        channel=row.channel,
        phone=row.phone,
        status=row.status,
        attempts=row.attempts,
        provider_id=row.provider_id,
        error_code=row.error_code,
        error_text=row.error_text,
        created_at=iso(row.created_at),
        updated_at=iso(row.updated_at),
        sent_at=iso(row.sent_at),
        due_at=iso(row.due_at),
        fields=fields if isinstance(fields, dict) else {},
        final_at=iso(row.final_at),
    )


def lookup(
    *,
    phone: str | None = None,
    provider_id: str | None = None,
    message_id: str | None = None,
    limit: int = 100,
    cfg: Settings | None = None,
) -> list[MessageView]:
    """Messages to a phone (newest first), or the one with a provider or message id."""
    m = messages_table.c
    query = sa.select(messages_table)
    if phone is not None:
        query = query.where(m.phone == _stored_phone(phone))
    if provider_id is not None:
        query = query.where(m.provider_id == provider_id)
    if message_id is not None:
        query = query.where(m.id == message_id)
    if phone is None and provider_id is None and message_id is None:
        raise ValueError("lookup needs a phone, a provider_id or a message_id")
    query = query.order_by(m.created_at.desc(), m.id).limit(limit)
    with _engine(cfg).connect() as conn:
        return [_view(row) for row in conn.execute(query)]


def job_messages(
    job_id: str,
    *,
    status: str | None = None,
    after: str | None = None,
    limit: int = 100,
    cfg: Settings | None = None,
) -> list[MessageView]:
    """One page of a job's messages in id order; pass the last id as ``after`` for the next."""
    m = messages_table.c
    query = sa.select(messages_table).where(m.job_id == job_id)
    if status is not None:
        query = query.where(m.status == status)
    if after is not None:
        query = query.where(m.id > after)
    query = query.order_by(m.id).limit(limit)
    with _engine(cfg).connect() as conn:
        return [_view(row) for row in conn.execute(query)]


def _stored_phone(phone: str) -> str:
    """``phone`` as messages store it (E.164); as given when it is no valid number, so that a
    row stored before numbers were checked is still found. A number without its country code
    would find nothing: it is refused, saying so."""
    from teledispatch.validation import Problem, ValidationFailed, normalize_phone

    normal = normalize_phone(phone)
    if normal is not None:
        return normal
    if not phone.strip().startswith("+"):
        rule = "has no country code: write it as + and the country code first (E.164)"
        raise ValidationFailed([Problem(None, "phone", phone[:24], rule)])
    return phone
