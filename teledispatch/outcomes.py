"""What a lookup answers (a job's status, a phone's messages) and how it is worked out from
the rows, whichever way they are read.

Two ways read them: ``producer/lookup.py`` through SQLAlchemy (the app, the API, every verb
when the quick way declines), and ``quick_reads.py`` through the database's own driver (the
CLI's ``status`` and ``lookup``, which must start fast). Both hand a :class:`Reads` to the
functions here, so the answer is worked out once, the same way. This module imports neither
SQLAlchemy nor pydantic.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from teledispatch.db.attempts.plain import AttemptRow
from teledispatch.errors import Error
from teledispatch.eta import Limits, Load, estimate
from teledispatch.statuses import ACTIVE_STATUSES, SENDING, UNKNOWN


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
    #: Recipients stored so far (fewer than ``total`` while a big job is being stored).
    accepted: int
    counts: dict[str, int]
    done: bool
    created_at: str | None
    cancelled: bool = False
    #: Earliest time a not-yet-due message becomes due (retries, deferrals, not_before).
    next_due_at: str | None = None
    #: When its last message should leave: its remaining messages at its share of the
    #: account's configured rate (``teledispatch.eta``), and never before its last waiting
    #: message becomes due (quiet hours, retries); None when done or nothing limits it.
    eta: str | None = None
    #: SMS segments billed per encoding (``{"gsm7": 1200, "ucs2": 40}``); empty for channels
    #: that send no text of their own.
    segments: dict[str, int] = field(default_factory=dict)
    #: The route the job named (``account`` is then the first account it may use); None: the
    #: job named an account.
    route: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class AttemptView:
    """An account a routed message left: when, and why (``paused``: its circuit was open;
    ``refused``: a code worth another provider). The message's own ``account`` and
    ``status`` are where it went last."""

    account: str
    at: str | None
    outcome: str
    error_code: str | None = None
    error_text: str | None = None


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
    #: SMS text encoding (``gsm7``/``ucs2``) and parts billed; None for channels without text.
    encoding: str | None = None
    segments: int | None = None
    #: The message this one sends again (``teledispatch retry``); None for a first message.
    retry_of: str | None = None
    #: A routed message's route, and the accounts it left before ``account`` (oldest first).
    route: str | None = None
    history: list[AttemptView] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class Reads(Protocol):
    """The reads a status or a lookup makes, on one connection (rows as SQLAlchemy's: by
    column name and by position)."""

    def get_job(self, job_id: str) -> Any | None: ...
    def status_counts(self, job_id: str) -> dict[str, int]: ...
    def count_reconciling(self, job_id: str) -> int: ...
    def due_range(self, job_id: str, now: float) -> tuple[float | None, float | None]: ...
    def segment_counts(self, job_id: str) -> dict[str, int]: ...
    def account_load(self, account: str) -> Sequence[Any]: ...
    def weights(self, job_ids: Sequence[str]) -> dict[str, float]: ...
    def find_messages(
        self, phone: str | None, provider_id: str | None, message_id: str | None, limit: int
    ) -> Sequence[Any]: ...
    def attempts(self, message_ids: Sequence[str]) -> dict[str, list[AttemptRow]]: ...


def limits_of(cfg: Any, account: str) -> Limits | None:
    """The account's limits as the ETA reads them (``cfg``: ``config.Settings``); None if it
    is no longer configured."""
    try:
        a = cfg.account(account)
    except Error:
        return None
    return Limits(
        messages_per_second=a.max_messages_per_second,
        requests_per_second=a.max_requests_per_second,
        batch_size=a.batch_size,
        messages_per_hour=a.max_messages_per_hour,
        messages_per_day=a.max_messages_per_day,
    )


def _eta(
    reads: Reads, limits: Limits | None, job: Any, counts: dict[str, int], now: float
) -> float | None:
    """The job's estimated finish from its account's backlog (every job's waiting rows)."""
    if limits is None:
        return None
    loads: dict[str, Load] = {}
    for job_id, priority, waiting, first_due in reads.account_load(job.account):
        j = str(job_id)
        ready = max(now, float(first_due))
        prev = loads.get(j)
        if prev is not None:  # one job, one lane: only if its rows were stored mid-change
            waiting += prev.remaining
            ready = min(ready, prev.ready_at)
        loads[j] = Load(j, int(priority), 1.0, int(waiting), ready)
    weights = reads.weights(list(loads))
    loads = {
        j: Load(j, ld.lane, weights.get(j, 1.0), ld.remaining, ld.ready_at)
        for j, ld in loads.items()
    }
    # The job's own rows in flight count too (other jobs' are few and soon done).
    mine = loads.get(job.id, Load(job.id, int(job.priority), float(job.weight), 0, now))
    in_flight = counts.get(SENDING, 0)
    not_stored = max(0, job.total - sum(counts.values()))
    loads[job.id] = Load(
        job.id, mine.lane, mine.weight, mine.remaining + in_flight + not_stored, mine.ready_at
    )
    return estimate(job.id, list(loads.values()), limits, now)


def read_status(
    reads: Reads, job_id: str, limits: Callable[[str], Limits | None], now: float
) -> JobStatus:
    """The job's counts and progress; ``limits`` gives an account's (asked only while the
    job is active), ``now`` (epoch s) is the clock its ETA counts from."""
    job = reads.get_job(job_id)
    if job is None:
        raise JobNotFound(f"no job {job_id!r}")
    counts = reads.status_counts(job_id)
    reconciling = reads.count_reconciling(job_id) if counts.get(UNKNOWN) else 0
    next_due, last_due = reads.due_range(job_id, now)
    segments = reads.segment_counts(job_id)
    accepted = sum(counts.values())
    active = sum(n for s, n in counts.items() if s in ACTIVE_STATUSES)
    done = accepted >= job.total and active == 0 and reconciling == 0
    eta = None if done or active == 0 else _eta(reads, limits(job.account), job, counts, now)
    if eta is not None and last_due is not None:
        # Nothing leaves before its due time (quiet hours, retries): no finish before that.
        eta = max(eta, last_due)
    elif active and last_due is not None:
        eta = last_due
    return JobStatus(
        job_id=job.id,
        account=job.account,
        channel=job.channel,
        total=job.total,
        accepted=accepted,
        counts=dict(sorted(counts.items())),
        done=done,
        created_at=iso(job.created_at),
        cancelled=job.cancelled_at is not None,
        next_due_at=iso(next_due),
        eta=iso(eta),
        segments=segments,
        route=job.route,
    )


def views(reads: Reads, rows: Sequence[Any]) -> list[MessageView]:
    """Views of ``rows``, with the attempts of the routed ones (one more query if any)."""
    routed = [row.id for row in rows if row.route is not None]
    found = reads.attempts(routed) if routed else {}
    history = {
        message_id: [
            AttemptView(a.account, iso(a.at), a.outcome, a.error_code, a.error_text)
            for a in attempts
        ]
        for message_id, attempts in found.items()
    }
    return [view(row, history.get(row.id, [])) for row in rows]


def view(row: Any, history: list[AttemptView] | None = None) -> MessageView:
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
        encoding=row.encoding,
        segments=row.segments,
        retry_of=row.retry_of,
        route=row.route,
        history=history or [],
    )


def read_messages(
    reads: Reads,
    *,
    phone: str | None = None,
    provider_id: str | None = None,
    message_id: str | None = None,
    limit: int = 100,
) -> list[MessageView]:
    """Messages to a phone (newest first), or the one with a provider or message id; the
    phone as :func:`stored_phone` gives it."""
    return views(reads, reads.find_messages(phone, provider_id, message_id, limit))


def stored_phone(phone: str) -> str:
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
