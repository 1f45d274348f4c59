"""Waiting without a process: park a batch until its booked slot, and send parked batches.

Every wait of a limited account is booked, not slept (``worker/ratelimit/booking.py``):

* a rate slot further ahead than :data:`SHORT_WAIT_S`: the batch is parked and a wake-up is
  published for its slot (:func:`park`); the dispatch that runs then sends it
  (:func:`send_parked`);
* a claim that could only book beyond the horizon, or a full concurrency cap: nothing is
  claimed (:func:`room_ahead`), the account is woken when the slot comes near, or when a
  request of the account releases its concurrency slot;
* a backoff or a window held: the rows wait in the database with a due time, as before.
"""

from __future__ import annotations

import time
from types import MappingProxyType

from teledispatch import wakeups
from teledispatch.channels.base import Adapter
from teledispatch.config import AccountConfig
from teledispatch.db import messages as repo
from teledispatch.worker.context import Context
from teledispatch.worker.ratelimit import Reservation
from teledispatch.worker.ratelimit.booking import (
    SHORT_WAIT_S,
    WAKE_LEAD_S,
    Booking,
    horizon_s,
)
from teledispatch.worker.ratelimit.reservation import LATE_LIMIT_S

from .admit import Admission
from .common import Report, has_limits, park_booking
from .send import send_batch

#: At most this many parked batches are sent by one task before it claims (each has its own
#: wake-up; more than one is due only after the pool was busy).
PARKED_PER_TASK = 4

#: Without a free concurrency slot the account is woken by the release of one; this wake-up
#: is the fallback (a release between the check and the flag, a worker that died).
SLOT_FALLBACK_S = 1.0


def should_park(admission: Admission) -> bool:
    """Whether the admitted batch's slot is too far ahead to sleep for in the process."""
    res = admission.reservation
    return bool(admission.rows) and res is not None and res.delay_s > SHORT_WAIT_S


def park(ctx: Context, account: AccountConfig, token: str, admission: Admission) -> None:
    """Keep the batch claimed, book it in Redis and publish its wake-up for the slot."""
    res = admission.reservation
    assert res is not None and res.send_at is not None
    booking = Booking(
        token, admission.rows[0].group_key, res.send_at, admission.slot, admission.stamp_at
    )
    # Measured from the reservation's decision: the time spent since is already gone.
    park_booking(ctx, account, booking, res.delay_s - (time.monotonic() - res.local_now))


def send_parked(ctx: Context, account: AccountConfig, adapter: Adapter, report: Report) -> int:
    """Send the account's parked batches whose slot has come; how many were sent.

    A wake-up is never run before its countdown, so each parked batch is due when its own
    wake-up runs, if no other dispatch took it first. One that a clock difference between
    machines makes look a little early (within :data:`SHORT_WAIT_S`) is waited for here.
    """
    sent = 0
    retried = False
    while sent < PARKED_PER_TASK:
        popped = ctx.limiter.bookings.pop_due(account)
        booking = popped.booking
        if booking is None:
            early = None if popped.soonest is None else popped.soonest - popped.server_now
            if retried or early is None or early - WAKE_LEAD_S > SHORT_WAIT_S:
                return sent
            retried = True
            time.sleep(max(0.0, early - WAKE_LEAD_S))
            continue
        rows = repo.claimed_rows(ctx.engine, booking.token, booking.group_key)
        if not rows:  # the sweep took them back (a lease ran out): nothing to send
            if booking.slot is not None:
                ctx.limiter.release_slot(account, booking.slot)
            continue
        reservation = Reservation(
            admitted=tuple(range(len(rows))),
            deferred=MappingProxyType({}),
            retry=(),
            send_at=booking.send_at,
            wait_s=0.0,
            server_now=popped.server_now,
            late_limit_s=LATE_LIMIT_S,
            local_now=popped.local_now,
        )
        admission = Admission(rows, reservation, booking.slot, stamp_at=booking.stamped_at)
        send_batch(ctx, account, adapter, booking.token, rows, report, admission)
        sent += 1
    return sent


def room_ahead(ctx: Context, account: AccountConfig) -> bool:
    """Whether a claim now could get a slot within the horizon (read-only checks; the
    reservation decides). If not, the account is woken when it could, unless a parked batch's
    wake-up will look again anyway."""
    limiter = ctx.limiter
    if account.concurrency is not None and not limiter.slots.free(account):
        limiter.slots.want(account)
        wakeups.kick(ctx.redis, ctx.publish, account, SLOT_FALLBACK_S)
        return False
    if not has_limits(account):
        return True
    ahead = limiter.bookings.next_slot_in(account)
    horizon = horizon_s(account)
    if ahead <= horizon:
        return True
    wait = ahead - horizon
    # A parked batch's wake-up looks again when it runs; else one wake-up for the moment the
    # slot comes within reach (its own key: an OTP's lingering kick must not hold it back).
    if limiter.bookings.pending(account) == 0 and limiter.bookings.chain_wake(account, wait):
        name, queue = wakeups.dispatch_task(account.channel), wakeups.channel_queue(account.channel)
        ctx.publish(name, [account.name], queue, wait)
    return False
