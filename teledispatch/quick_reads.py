"""``teledispatch status`` and ``lookup`` without SQLAlchemy or pydantic, when they can.

Every call of those verbs used to import SQLAlchemy (the engine, the tables, the statement
builders) and pydantic (the account models) for a few SELECTs. Here the config file gets the
quick check of :mod:`teledispatch.config_quick`, the database is opened with its own driver
(:mod:`teledispatch.db.plain`), the schema is checked to be at the newest revision, and the
answer is worked out by :mod:`teledispatch.outcomes`, as on the SQLAlchemy path.

Each function returns None whenever it cannot be sure to answer as the SQLAlchemy path
would: a config file only the full loader can judge, a URL the driver is not given the same
way, a database not yet created or not at the newest revision, any database error. The
caller then takes that path, which creates or migrates the schema and words every error as
it always has. Nothing is ever answered from a schema behind the migrations.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from teledispatch import config_quick
from teledispatch.db import plain
from teledispatch.db.attempts import plain as attempts_plain
from teledispatch.db.jobs import plain as jobs_plain
from teledispatch.db.messages import plain as messages_plain
from teledispatch.db.revision import STORED_REVISION_SQL, is_head
from teledispatch.eta import Limits
from teledispatch.outcomes import (
    JobStatus,
    MessageView,
    limits_of,
    read_messages,
    read_status,
    stored_phone,
)

T = TypeVar("T")


class PlainReads:
    """:class:`teledispatch.outcomes.Reads` on a DB-API connection."""

    def __init__(self, conn: plain.Plain) -> None:
        self.conn = conn

    def get_job(self, job_id: str) -> Any | None:
        return jobs_plain.get_job(self.conn, job_id)

    def status_counts(self, job_id: str) -> dict[str, int]:
        return messages_plain.status_counts(self.conn, job_id)

    def count_reconciling(self, job_id: str) -> int:
        return messages_plain.count_reconciling(self.conn, job_id)

    def due_range(self, job_id: str, now: float) -> tuple[float | None, float | None]:
        return messages_plain.due_range(self.conn, job_id, now)

    def segment_counts(self, job_id: str) -> dict[str, int]:
        return messages_plain.segment_counts(self.conn, job_id)

    def account_load(self, account: str) -> Sequence[Any]:
        return messages_plain.account_load(self.conn, account)

    def weights(self, job_ids: Sequence[str]) -> dict[str, float]:
        return jobs_plain.weights(self.conn, job_ids)

    def find_messages(
        self, phone: str | None, provider_id: str | None, message_id: str | None, limit: int
    ) -> Sequence[Any]:
        return messages_plain.find_messages(
            self.conn, phone=phone, provider_id=provider_id, message_id=message_id, limit=limit
        )

    def attempts(self, message_ids: Sequence[str]) -> dict[str, list[attempts_plain.AttemptRow]]:
        return attempts_plain.for_messages(self.conn, message_ids)


def _read(work: Callable[[PlainReads], T]) -> T | None:
    """``work`` on a connection to a database at the newest revision; None when the
    SQLAlchemy path must answer instead. ``work``'s own errors (no such job) go up."""
    url = config_quick.database_url()
    if url is None:
        return None
    try:
        conn = plain.connect(url)
        if conn is None:
            return None
        with conn:
            if not is_head([row[0] for row in conn.rows(STORED_REVISION_SQL)]):
                return None
            return work(PlainReads(conn))
    except Exception as exc:
        if plain.failed(exc):
            return None
        raise


def _account_limits(account: str) -> Limits | None:
    # An active job's ETA needs the account's limits: only then are the models built.
    from teledispatch.config import settings

    return limits_of(settings(), account)


def job_status(job_id: str, now: float | None = None) -> JobStatus | None:
    """As ``producer.lookup.job_status`` (raising ``JobNotFound`` the same way), or None."""
    at = time.time() if now is None else now
    return _read(lambda reads: read_status(reads, job_id, _account_limits, at))


def lookup(
    *, phone: str | None = None, provider_id: str | None = None, limit: int = 100
) -> list[MessageView] | None:
    """As ``producer.lookup.lookup`` (a phone without its country code refused the same
    way, before anything is read), or None."""
    if phone is None and provider_id is None:
        return None
    if phone is not None:
        phone = stored_phone(phone)
    return _read(
        lambda reads: read_messages(reads, phone=phone, provider_id=provider_id, limit=limit)
    )
