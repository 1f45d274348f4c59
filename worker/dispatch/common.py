"""What the dispatch steps share: the task's :class:`Report` and giving rows back."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from teledispatch import wakeups
from teledispatch.config import AccountConfig
from teledispatch.db import messages as repo
from teledispatch.worker.context import Context
from teledispatch.worker.ratelimit.booking import WAKE_LEAD_S, Booking

#: A claim is held for the request's timeout plus this: the rate-slot wait (at most about a
#: second) and writing the outcome. Shorter leases mean faster recovery from a dead worker.
LEASE_MARGIN_S = 10.0


@dataclass
class Report:
    claimed: int = 0
    requests: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    #: Messages claimed per job id: what the task result shows an operator in Flower.
    jobs: dict[str, int] = field(default_factory=dict)
    #: Requests that ended in an error (the provider's or ours), by metrics outcome label.
    failures: dict[str, int] = field(default_factory=dict)

    def add(self, status: str, n: int = 1) -> None:
        self.counts[status] = self.counts.get(status, 0) + n

    def add_jobs(self, job_ids: Iterable[str]) -> None:
        for job_id in job_ids:
            self.jobs[job_id] = self.jobs.get(job_id, 0) + 1

    def add_failure(self, outcome: str) -> None:
        self.failures[outcome] = self.failures.get(outcome, 0) + 1

    @property
    def failed_requests(self) -> int:
        return sum(self.failures.values())


def has_limits(account: AccountConfig) -> bool:
    return bool(
        account.max_requests_per_second
        or account.max_messages_per_second
        or account.max_messages_per_hour
        or account.max_messages_per_day
        or account.recipient_caps
    )


def give_back(
    ctx: Context,
    account: AccountConfig,
    token: str,
    rows: Sequence[repo.Claimed],
    report: Report,
    reason: str,
    *,
    delay_s: float = 0.0,
    kick_s: float | None = None,
    unmark: bool = False,
) -> None:
    """Give claimed rows back undeparted: queued again ``delay_s`` from now with their attempt
    refunded (nothing was sent, through no fault of the recipients'), their batch row finished.

    ``reason`` is the report's count for them; ``kick_s``: wake a dispatcher that much later;
    ``unmark``: the batch was marked departing and is not leaving after all.
    """
    group = rows[0].group_key
    now = ctx.clock()
    if unmark:
        repo.unmark_departing(ctx.engine, token, group)
    updates = [repo.Update.requeue(r.id, now + delay_s) for r in rows]
    repo.apply(ctx.engine, token, updates, now, finish=group)
    report.add(reason, len(rows))
    if kick_s is not None:
        wakeups.kick(ctx.redis, ctx.publish, account, kick_s)


def park_booking(ctx: Context, account: AccountConfig, booking: Booking, left_s: float) -> None:
    """Keep a claimed batch for its slot ``left_s`` from now: booked in Redis, with a wake-up
    task published for the slot (``worker/ratelimit/booking.py``); no process waits for it."""
    ctx.limiter.bookings.park(account, booking, account.timeout_s + LEASE_MARGIN_S)
    # Its own task, not deduplicated: every parked batch needs its wake-up at its slot.
    name, queue = wakeups.dispatch_task(account.channel), wakeups.channel_queue(account.channel)
    ctx.publish(name, [account.name], queue, max(0.0, left_s - WAKE_LEAD_S))
