"""The global limits' say over one claimed group: a concurrency slot and a rate reservation."""

from __future__ import annotations

from dataclasses import dataclass

from teledispatch.config import AccountConfig
from teledispatch.db import messages as repo
from teledispatch.worker.context import Context
from teledispatch.worker.ratelimit import Reservation
from teledispatch.worker.ratelimit.booking import horizon_s

from .common import LEASE_MARGIN_S, Report, give_back, has_limits

#: The longest a batch may book its request slot ahead (``booking.horizon_s`` is shorter).
#: The batch then waits parked, not in a process; the lease (timeout + 10 s) bounds it.
RESERVE_AHEAD_S = 3.0

#: Rows no slot was free for are held this much less than the reservation's wait.
RETRY_HOLD_LEAD_S = 0.05

#: Without a free concurrency slot, the rows are given back due at once; the release of a
#: slot wakes the account (``slots.want``), this wake-up is the fallback.
SLOT_RETRY_S = 1.0


@dataclass
class Admission:
    """What the global limits let through for one request."""

    rows: list[repo.Claimed]
    reservation: Reservation | None = None
    slot: str | None = None
    #: Seconds until the held-back rows may be tried (0: nothing is waiting on a budget).
    wait_s: float = 0.0
    #: The slot the reservation charged the recipients at, if not ``reservation.send_at`` (a
    #: batch parked again at the departure gate comes back with a later slot).
    stamp_at: float | None = None

    @property
    def stamped_at(self) -> float | None:
        """The slot whose recipient stamps this batch holds (None: no reservation)."""
        if self.stamp_at is not None:
            return self.stamp_at
        return None if self.reservation is None else self.reservation.send_at


def admit(
    ctx: Context, account: AccountConfig, token: str, rows: list[repo.Claimed], report: Report
) -> Admission:
    """Take a concurrency slot and one rate reservation for the batch; hand back the rest.

    Recipients over a per-recipient or hour/day window become ``deferred`` until the window
    allows; recipients for which no request slot was free soon enough go back to ``queued``.
    Neither spends an attempt.
    """
    if account.concurrency is None and not has_limits(account):
        return Admission(rows)
    slot = None
    if account.concurrency is not None:
        # No waiting here (a process waiting for a slot serves nobody): the rows go back and
        # the next release of a slot wakes the account.
        slot = ctx.limiter.acquire_slot(account, lease_s=account.timeout_s + LEASE_MARGIN_S)
        if slot is None:
            ctx.limiter.slots.want(account)
            give_back(ctx, account, token, rows, report, "waiting")
            return Admission([], wait_s=SLOT_RETRY_S)
    if not has_limits(account):
        return Admission(rows, slot=slot)
    return _reserve(ctx, account, token, rows, report, slot)


def _reserve(
    ctx: Context,
    account: AccountConfig,
    token: str,
    rows: list[repo.Claimed],
    report: Report,
    slot: str | None,
) -> Admission:
    """One rate reservation for the rows; those it holds back are written back at once."""
    ahead = min(RESERVE_AHEAD_S, horizon_s(account))
    res = ctx.limiter.reserve(account, [r.phone for r in rows], max_wait_s=ahead)
    now = ctx.clock()
    why = "held by a rate window"
    held = [
        repo.Update.deferred(rows[i].id, due, "rate_window", why) for i, due in res.deferred.items()
    ]
    # Held until a little before the slot comes within reach: the claim woken for that very
    # moment must find them due (held to the same instant, a high-priority single lost that
    # race and its turn, measured: 1.16 s behind a 0.5 s slot).
    hold = max(0.0, res.wait_s - RETRY_HOLD_LEAD_S)
    held += [repo.Update.requeue(rows[i].id, now + hold) for i in res.retry]
    if held:
        repo.apply(ctx.engine, token, held, now, finish=rows[0].group_key)
        report.add("deferred", len(res.deferred))
        report.add("waiting", len(res.retry))
    admitted = [rows[i] for i in res.admitted]
    if not admitted and slot is not None:
        ctx.limiter.release_slot(account, slot)
        slot = None
    return Admission(admitted, res, slot, res.wait_s if res.retry else 0.0)
