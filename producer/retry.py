"""Retrying a job's finished messages: a new attempt each, linked to the original.

Only what provably never reached the provider is sent again (``db.messages.retry`` says
how that is read from the record); the rest is counted as skipped, with the reason, so an
operator sees why fewer went than were chosen. A message is retried at most once: retrying
again sends only the retries that failed in turn.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from teledispatch.config import Settings, settings
from teledispatch.db import jobs as jobs_db
from teledispatch.db import messages as messages_db
from teledispatch.db.engine import get_engine
from teledispatch.db.migrate import ensure_schema
from teledispatch.producer.lookup import JobNotFound
from teledispatch.statuses import FAILED

#: Why chosen messages were not sent again.
SKIP_MAY_HAVE_BEEN_SENT = (
    "may have been sent: unknown, or failed after the request left; "
    "nothing in the record proves it never reached the provider"
)
SKIP_ALREADY_RETRIED = "already retried: its retry is a newer message of the job"
SKIP_CANCELLED = "the job was cancelled"
SKIP_EXPIRED = "the job has expired: a retry would only expire"


@dataclass(frozen=True)
class Skipped:
    reason: str
    count: int


@dataclass(frozen=True)
class Retried:
    job_id: str
    #: New messages queued by this call.
    retried: int
    skipped: list[Skipped] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def retry_job(
    job_id: str,
    *,
    statuses: Sequence[str] = (FAILED,),
    error_codes: Sequence[str] = (),
    cfg: Settings | None = None,
) -> Retried:
    """Queue a new message for each of the job's chosen finished messages that may be sent
    again; raises :class:`JobNotFound`. ``statuses`` are ``failed`` and/or ``unknown``."""
    cfg = cfg or settings()
    bad = sorted(set(statuses) - set(messages_db.RETRYABLE_STATUSES))
    if bad:
        raise ValueError(f"only failed or unknown messages can be retried, not {bad}")
    now = time.time()
    ensure_schema(cfg.database_url)
    with get_engine(cfg.database_url).begin() as conn:
        job = jobs_db.lock_total(conn, job_id)
        if job is None:
            raise JobNotFound(f"no job {job_id!r}")
        plan = messages_db.retry_plan(conn, job_id, statuses, error_codes)
        if job.cancelled_at is not None:
            return Retried(job_id, 0, _skipped(plan, SKIP_CANCELLED))
        if job.expires_at is not None and job.expires_at <= now:
            return Retried(job_id, 0, _skipped(plan, SKIP_EXPIRED))
        n = messages_db.insert_retries(conn, job_id, job.total, statuses, error_codes, now)
        jobs_db.add_to_total(conn, job_id, n)
    if n and job.account in cfg.accounts:  # an account gone from the config sends nothing
        from teledispatch.producer.submit import wake_if_due

        wake_if_due(cfg, cfg.account(job.account), None, n)
    return Retried(job_id, n, _skipped(plan))


def _skipped(plan: messages_db.RetryPlan, refused: str | None = None) -> list[Skipped]:
    """Skipped messages by reason; ``refused``: why the eligible ones were not sent either."""
    reasons = [
        (refused or "", plan.eligible if refused else 0),
        (SKIP_MAY_HAVE_BEEN_SENT, plan.may_have_been_sent),
        (SKIP_ALREADY_RETRIED, plan.already_retried),
    ]
    return [Skipped(reason, n) for reason, n in reasons if n]


__all__ = ["Retried", "Skipped", "retry_job"]
