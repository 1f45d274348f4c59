"""The task body: claim due messages of one account and send them, until a claim is short.

Messages of every job of the account are claimed together, so single-recipient jobs share
requests with each other and with big jobs. If a claim comes back full, another dispatch is
published *before* this one sends, so a backlog is worked by every free worker process at
once; an unpaced account's task then keeps claiming for a short while (``LOOP_BUDGET_S``).

A paced account's task first sends its parked batches that are due, then claims only while a
slot is within reach (``park.room_ahead``) and parks what it booked ahead (``park``): it
never sleeps for a slot, so the pool stays free for other accounts.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass

import redis

from teledispatch import wakeups
from teledispatch.channels.base import Adapter
from teledispatch.channels.registry import adapter_for
from teledispatch.config import AccountConfig
from teledispatch.db import messages as repo
from teledispatch.worker import metrics
from teledispatch.worker.context import Context
from teledispatch.worker.quiet import hold_quiet

from . import failover
from .admit import Admission, admit
from .common import LEASE_MARGIN_S, Report, has_limits
from .park import park, room_ahead, send_parked, should_park
from .send import send_batch

#: An account that nothing paces but the work itself keeps its task claiming while claims
#: come back full, for up to this long. A Celery task costs the worker ~3 ms of CPU of its
#: own (events, acknowledgement, the follow-up's publish; py-spy over the pool): 17 µs for
#: each message of a 200-message batch, a third of the worker's cost, when every task sent
#: one request. Bounded so that a pool process soon returns to other accounts' tasks.
LOOP_BUDGET_S = 0.5

#: The longest one claim turn of a limited account is held if its holder dies (a claim and
#: its bookings take milliseconds; a claim that outlasts it only races the next one).
CLAIM_TURN_S = 5.0

#: A paced account's task books at most this many batches ahead in one go (the horizon,
#: about one request slot, stops it sooner at any real rate).
PACED_TURNS = 4


def dispatch(ctx: Context, account_name: str) -> Report:
    """Claim and send until a claim comes back short (or, for a paced account, once).

    Accounts with rate limits or a concurrency cap send one claim per task, as their limits
    set the pace and the follow-up/kick logic of :func:`_claim_and_send` is tuned for them.
    """
    account = ctx.settings.account(account_name)
    adapter = adapter_for(account.channel)
    report = Report()
    paced = account.concurrency is not None or has_limits(account)
    if not paced:
        wakeups.follow_up_started(ctx.redis, account)
    # Real elapsed time, not ``ctx.clock``: the budget is the pool process's time.
    deadline = time.monotonic() + LOOP_BUDGET_S
    followed = False
    if paced:
        send_parked(ctx, account, adapter, report)
    turns = 0
    while _turn(ctx, account, adapter, report, followed, gated=not paced, paced=paced):
        # An unpaced turn that comes back full has published its follow-up; a paced one
        # parked everything and published none, so a later turn that sends now still must.
        followed = followed or not paced
        turns += 1
        if paced and turns >= PACED_TURNS:
            break
        if time.monotonic() >= deadline:
            # More is waiting and this task's turn is over: another carries on, unless one
            # is already waiting to start.
            wakeups.follow_up(ctx.redis, ctx.publish, account, once=True)
            break
    return report


def _turn(
    ctx: Context,
    account: AccountConfig,
    adapter: Adapter,
    report: Report,
    followed: bool,
    *,
    gated: bool,
    paced: bool = False,
) -> bool:
    """One claim if the account's circuit allows it; while it is open, at most one probe.

    Asked before every claim, not once per task: a circuit that opens while a task keeps
    claiming must stop it, or the rows its failure gave back would be claimed again at once.
    """
    lease_s = account.timeout_s + LEASE_MARGIN_S
    gate = ctx.circuit.gate(account, ctx.clock(), lease_s)
    if gate.wait_s is not None:
        # Paused: routed messages waiting here move on to their route's next account. The
        # sweep wakes due accounts too; this wake is the one that keeps probes on time.
        wait_s = gate.wait_s
        if failover.drain(ctx, account) >= failover.DRAIN_CHUNK:
            wait_s = 0.0  # more to move
        wakeups.kick(ctx.redis, ctx.publish, account, max(wait_s, 0.05))
        return False
    if not gate.probe:
        if paced and not room_ahead(ctx, account):
            return False
        return _claim_and_send(ctx, account, adapter, report, followed, gated=gated)
    try:
        # A small batch, and no follow-up: the rest waits for the probe's answer, whose
        # success wakes the account (send.py).
        limit = min(account.circuit_probe_size, account.batch_size)
        _claim_and_send(ctx, account, adapter, report, True, limit=limit)
    finally:
        ctx.circuit.abandon(account, ctx.clock())
    return False


def _claim_and_send(
    ctx: Context,
    account: AccountConfig,
    adapter: Adapter,
    report: Report,
    followed: bool,
    *,
    gated: bool = False,
    limit: int | None = None,
) -> bool:
    """One claim, sent or parked; True if it came back full and nothing had to wait: for an
    unpaced account, more to do now; for a paced one, every batch was parked (this task may
    book the next slot too).

    Once per task (``followed`` False), a full claim whose batch goes now publishes the next
    dispatch *before* sending, so a backlog is worked by every free worker process at once;
    ``gated``: only if none is already waiting to start (:func:`teledispatch.wakeups.follow_up`).
    A parked batch publishes none: its task books the next slot itself.

    A limited account claims and books under its claim turn (``bookings.claiming``), and
    sends after giving it up.
    """
    turn = None
    if has_limits(account):
        turn = ctx.limiter.bookings.claiming(account, CLAIM_TURN_S)
        if turn is None:
            return False  # another dispatch is claiming: it books what is within reach
    try:
        booked = _claim_and_book(ctx, account, report, limit or account.batch_size)
    finally:
        if turn is not None:
            with contextlib.suppress(redis.exceptions.LockError):  # expired: nothing to free
                turn.release()
    if booked is None:
        return False
    full, all_parked = booked.full, not booked.to_send
    waits: list[float] = []
    for admission in booked.to_send:
        if admission.wait_s:
            waits.append(admission.wait_s)
        elif full and not followed:
            # More is waiting and the limits allow it: the next claim starts now, in another
            # process, while this one sends. Not when the limiter said wait (that would spin).
            wakeups.follow_up(ctx.redis, ctx.publish, account, once=gated)
            followed = True
        if admission.rows:
            send_batch(ctx, account, adapter, booked.token, admission.rows, report, admission)
    if waits or (full and not followed and not all_parked):
        delay_s = max(min(waits, default=0.05), 0.05)
        wakeups.kick(ctx.redis, ctx.publish, account, delay_s)
    # Unpaced (``gated``): claim again now; paced: only after parking, to book the next slot.
    return full and not waits and (gated or all_parked)


@dataclass(frozen=True, slots=True)
class _Booked:
    """A claim's groups after their admission: parked ones are booked; the rest go now."""

    token: str
    #: The groups to send now (none: every group was parked).
    to_send: list[Admission]
    #: Whether the claim came back full (more is waiting).
    full: bool


def _claim_and_book(
    ctx: Context, account: AccountConfig, report: Report, limit: int
) -> _Booked | None:
    """Claim, then each group's admission: parked if its slot is ahead, else to send now.
    None if the claim came back short with nothing to send or park."""
    lease_s = account.timeout_s + LEASE_MARGIN_S
    claim = repo.claim(ctx.engine, account.name, limit, lease_s, ctx.clock())
    report.claimed += len(claim.messages)
    report.add_jobs(row.job_id for row in claim.messages)
    if claim.expired:
        # Found past their expiry by the claim and written ``expired`` in it: never sent.
        report.add("expired", claim.expired)
        metrics.record_message_counts(account, {"expired": claim.expired})
    if claim.suppressed:
        # Opted out after enqueue: written ``suppressed`` by the claim, never sent.
        report.add("suppressed", claim.suppressed)
        metrics.record_message_counts(account, {"suppressed": claim.suppressed})
    full = len(claim.messages) + claim.expired + claim.suppressed >= limit
    rows, quiet = hold_quiet(
        ctx.engine, claim.token, claim.messages, ctx.clock(), claim.quiet_hours
    )
    if quiet:
        report.add("deferred", quiet)
    if not rows:
        return _Booked(claim.token, [], True) if full else None
    groups: dict[str, list[repo.Claimed]] = {}
    for row in rows:
        groups.setdefault(row.group_key, []).append(row)
    admissions: list[Admission] = []
    for group in groups.values():
        admission = admit(ctx, account, claim.token, group, report)
        if should_park(admission):
            park(ctx, account, claim.token, admission)
        else:
            admissions.append(admission)
    return _Booked(claim.token, admissions, full)
