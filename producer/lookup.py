"""Reading outcomes back: by job, by recipient, by provider message id.

Counts come from the messages table itself (``GROUP BY status`` on an index), never from a
counter that a crash could leave wrong. What the answers are, and how they are worked out
from the rows, is ``teledispatch.outcomes``; here the rows are read through SQLAlchemy.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from teledispatch.config import Settings, settings
from teledispatch.db import attempts as attempts_db
from teledispatch.db import jobs as jobs_db
from teledispatch.db import messages as messages_db
from teledispatch.db.attempts import AttemptRow
from teledispatch.db.engine import get_engine
from teledispatch.db.migrate import ensure_schema

# Defined in teledispatch.outcomes (no SQLAlchemy there, for the CLI's quick reads); named
# here, where the app and the API have always found them.
from teledispatch.outcomes import AttemptView as AttemptView
from teledispatch.outcomes import JobNotFound as JobNotFound
from teledispatch.outcomes import JobStatus as JobStatus
from teledispatch.outcomes import MessageView as MessageView
from teledispatch.outcomes import iso as iso
from teledispatch.outcomes import limits_of as limits_of
from teledispatch.outcomes import read_messages, read_status, stored_phone, views


class CoreReads:
    """:class:`teledispatch.outcomes.Reads` on a SQLAlchemy connection."""

    def __init__(self, conn: sa.Connection) -> None:
        self.conn = conn

    def get_job(self, job_id: str) -> Any | None:
        return jobs_db.get_job(self.conn, job_id)

    def status_counts(self, job_id: str) -> dict[str, int]:
        return messages_db.status_counts(self.conn, job_id)

    def count_reconciling(self, job_id: str) -> int:
        return messages_db.count_reconciling(self.conn, job_id)

    def due_range(self, job_id: str, now: float) -> tuple[float | None, float | None]:
        return (
            messages_db.next_due_at(self.conn, job_id, now),
            messages_db.last_due_at(self.conn, job_id, now),
        )

    def segment_counts(self, job_id: str) -> dict[str, int]:
        return messages_db.segment_counts(self.conn, job_id)

    def account_load(self, account: str) -> Sequence[Any]:
        return messages_db.account_load(self.conn, account)

    def weights(self, job_ids: Sequence[str]) -> dict[str, float]:
        return jobs_db.weights(self.conn, job_ids)

    def find_messages(
        self, phone: str | None, provider_id: str | None, message_id: str | None, limit: int
    ) -> Sequence[Any]:
        return messages_db.find_messages(
            self.conn, phone=phone, provider_id=provider_id, message_id=message_id, limit=limit
        )

    def attempts(self, message_ids: Sequence[str]) -> dict[str, list[AttemptRow]]:
        return attempts_db.for_messages(self.conn, message_ids)


def _engine(cfg: Settings | None) -> sa.Engine:
    url = (cfg or settings()).database_url
    ensure_schema(url)
    return get_engine(url)


def job_status(job_id: str, *, cfg: Settings | None = None, now: float | None = None) -> JobStatus:
    """The job's counts and progress; ``now`` (epoch s) is the clock its ETA counts from."""
    cfg = cfg or settings()
    now = time.time() if now is None else now
    with _engine(cfg).connect() as conn:
        return read_status(CoreReads(conn), job_id, lambda a: limits_of(cfg, a), now)


def lookup(
    *,
    phone: str | None = None,
    provider_id: str | None = None,
    message_id: str | None = None,
    limit: int = 100,
    cfg: Settings | None = None,
) -> list[MessageView]:
    """Messages to a phone (newest first), or the one with a provider or message id."""
    if phone is None and provider_id is None and message_id is None:
        raise ValueError("lookup needs a phone, a provider_id or a message_id")
    if phone is not None:
        phone = stored_phone(phone)
    with _engine(cfg).connect() as conn:
        return read_messages(
            CoreReads(conn),
            phone=phone,
            provider_id=provider_id,
            message_id=message_id,
            limit=limit,
        )


def job_messages(
    job_id: str,
    *,
    status: str | None = None,
    after: str | None = None,
    limit: int = 100,
    cfg: Settings | None = None,
) -> list[MessageView]:
    """One page of a job's messages in id order; pass the last id as ``after`` for the next."""
    with _engine(cfg).connect() as conn:
        rows = messages_db.job_messages_page(conn, job_id, status=status, after=after, limit=limit)
        return views(CoreReads(conn), rows)
