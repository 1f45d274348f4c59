"""One request for a batch of claimed rows, in named steps, and the outcome of each message.

The order of the steps is the argument for "at most once unless ambiguous": the batch row is
marked departing (a compare-and-set against the sweep) before the departure gate, and the gate
is passed before the body is written. Until the request may have started to be written, every
failure gives the batch back or retries it as not sent; from then on it may have been acted on.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from operator import attrgetter

from teledispatch import wakeups
from teledispatch.channels.base import Adapter, HttpRequest, ItemOutcome, OutMessage
from teledispatch.config import AccountConfig
from teledispatch.db import messages as repo
from teledispatch.errors import DispatchError, InternalError
from teledispatch.statuses import EXPIRED
from teledispatch.worker import metrics
from teledispatch.worker.context import Context
from teledispatch.worker.ratelimit import Departure, Reservation
from teledispatch.worker.ratelimit.booking import Booking
from teledispatch.worker.transport import HttpResponse

from . import failover, outcomes
from .admit import Admission
from .common import LEASE_MARGIN_S, Report, give_back, has_limits, park_booking

log = logging.getLogger("teledispatch.dispatch")

_status = attrgetter("status")

#: A batch given back because its rate slot or the departure window was missed is tried again
#: this much later (a wake-up, not a due time: the rows are due at once).
RETRY_KICK_S = 0.05

#: A built request whose departure window frees within this long waits for it here. Parking
#: it again costs a wake-up, which on a loaded 2-core machine came 40–100 ms late at p90:
#: re-parked batches made every later slot late too (provider-bound run: 85–92 % of the rate
#: with 5 ms here, 95 % with 100 ms, at load 4–7). The wait is bounded and only ever as long
#: as the window is behind its schedule.
GATE_WAIT_S = 0.1

#: A batch whose departure window stays full for longer than :data:`GATE_WAIT_S` is parked
#: again for the moment it frees (keeping its claim and its concurrency slot), up to this
#: long; beyond it, it is given back.
REPARK_MAX_S = 1.0


@dataclass
class _Request:
    """One request's batch, and how far it got."""

    ctx: Context
    account: AccountConfig
    adapter: Adapter
    token: str
    rows: Sequence[repo.Claimed]
    report: Report
    admission: Admission | None
    messages: list[OutMessage]
    attempts: dict[str, int]
    departure: Departure | None = None
    #: The per-recipient caps' departure (confirmed with the request's write).
    recipients: Departure | None = None
    #: How many messages the built request carries (recipients refused at departure shrink it).
    rows_built: int = 0
    #: ``perf_counter()`` when the request began to be written: from then on it may have left
    #: (and it counts as a request in the metrics).
    started: float | None = None
    #: ``perf_counter()`` when the body was written (None: not, or not reported)
    written: float | None = None
    latency: float | None = None
    #: Write → the answer's head (seconds), for the adaptive margin once the outcome is saved.
    answer_s: float | None = None
    #: Parked again at the departure gate: still claimed, its concurrency slot kept.
    parked: bool = False
    #: What ended the request, for the metrics (the raw exception for a bug of ours).
    failure: BaseException | None = None
    #: Marks the request in flight once its body is written (None: marked already).
    mark_flight: Callable[[], None] | None = None

    @property
    def reservation(self) -> Reservation | None:
        return self.admission.reservation if self.admission else None

    @property
    def stamp_at(self) -> float | None:
        """The slot at which the reservation charged the recipients (see ``Admission``)."""
        return self.admission.stamped_at if self.admission else None


def send_batch(
    ctx: Context,
    account: AccountConfig,
    adapter: Adapter,
    token: str,
    rows: Sequence[repo.Claimed],
    report: Report,
    admission: Admission | None = None,
) -> None:
    """Send ``rows`` in one request and record each message's outcome (or give them back)."""
    messages = [OutMessage(r.id, r.phone, repo.payload_of(r.payload)) for r in rows]
    attempts = {r.id: r.attempts for r in rows}
    req = _Request(ctx, account, adapter, token, rows, report, admission, messages, attempts)
    # In flight until released: singles arriving meanwhile linger to share the next request
    # (see teledispatch.wakeups). A paced account's request from here, its slot wait
    # included; an unpaced one waits for nothing, so from its write: the mark's round trip
    # was on every single's way to the provider.
    flight = f"{token}:{rows[0].group_key}"
    until = time.time() + account.timeout_s + LEASE_MARGIN_S

    def mark() -> None:
        wakeups.flight_started(ctx.redis, account, flight, until)

    if account.concurrency is None and not has_limits(account):
        req.mark_flight = mark
    else:
        mark()
    try:
        updates = _attempt(req)
    finally:
        _release(req)
        if wakeups.flight_ended(ctx.redis, account, flight):
            # Singles arrived while this request was in flight: they go now, together.
            wakeups.kick(ctx.redis, ctx.publish, account, 0)
    if updates is not None:
        _record(req, updates)
    if req.answer_s is not None:
        # After the outcome is saved: sharing the sample is a Redis round trip.
        ctx.limiter.observe_answer(account, req.answer_s)


def _attempt(req: _Request) -> list[repo.Update] | None:
    """The steps up to the outcomes; None if the batch was given back undeparted."""
    try:
        request = _build_request(req)
        # Marked departing before the slot, not after: the compare-and-set is a database
        # commit, and after the slot it made every request late by its round trip.
        if not (_drop_expired(req) and _mark_departing(req)):
            return None
        if not (_wait_for_slot(req) and _pass_gate(req)):
            return None
        if not _check_recipients(req):
            return None
        if len(req.messages) < req.rows_built:
            request = _build_request(req)
        response = _send(req, request)
        result = req.adapter.parse_response(
            req.messages, response.status, response.headers, response.body
        )
    except DispatchError as exc:
        req.failure = exc
        return _failed(req, exc)
    except Exception as exc:  # a bug (or Redis, the database) must not leave the batch claimed
        phase = "after the request left" if req.started is not None else "before sending"
        log.exception(
            "%s request of account %s failed %s", req.adapter.channel, req.account.name, phase
        )
        req.failure = exc
        # Only the phase says whether the provider may have it: not the exception's class.
        internal = InternalError(
            f"internal error: {type(exc).__name__}", may_have_been_sent=req.started is not None
        )
        return _failed(req, internal)
    _healthy(req)
    return _classify(req, result.items)


def _healthy(req: _Request) -> None:
    """The provider answered: a run of failures is over; if that closed the circuit, the
    account's waiting messages go now, at its full rate."""
    if req.ctx.circuit.success(req.account):
        wakeups.kick(req.ctx.redis, req.ctx.publish, req.account, 0)


def _give_back(req: _Request, reason: str, *, kick: bool = False, unmark: bool = False) -> None:
    ctx, kick_s = req.ctx, RETRY_KICK_S if kick else None
    give_back(
        ctx, req.account, req.token, req.rows, req.report, reason, kick_s=kick_s, unmark=unmark
    )


def _build_request(req: _Request) -> HttpRequest:
    req.rows_built = len(req.messages)
    return req.adapter.build_request(req.account, req.messages, req.ctx.clock())


def _wait_for_slot(req: _Request) -> bool:
    """Be ready to send, then wait for the reserved rate slot; False: given back."""
    req.ctx.transport.warm()
    if req.reservation is None or req.reservation.wait_for_slot():
        return True
    # Woke too late for the reserved slot: sending now could crowd the next second.
    _give_back(req, "waiting", kick=True, unmark=True)
    return False


def _mark_departing(req: _Request) -> bool:
    """The compare-and-set against the sweep; False: the lease was lost, given back."""
    ctx = req.ctx
    if repo.mark_departing(ctx.engine, req.token, req.rows[0].group_key, ctx.clock()):
        return True
    # The lease expired while we waited (a stalled process): the sweep has taken the batch
    # back or may at any moment, and sending now could duplicate a resend. Give back whatever
    # is still ours.
    _give_back(req, "lease_lost")
    return False


def _pass_gate(req: _Request) -> bool:
    """The departure gate of a rate-limited account; False: the window stays full (the batch
    is parked until it frees, or given back)."""
    if req.reservation is None:
        return True
    ctx = req.ctx
    got = ctx.limiter.try_depart(req.account, len(req.rows), timeout_s=GATE_WAIT_S)
    if isinstance(got, Departure):
        req.departure = got
        return True
    if got > REPARK_MAX_S:
        _give_back(req, "waiting", kick=True, unmark=True)
        return False
    # Waiting here would hold the process: park the batch for the moment the window frees.
    group = req.rows[0].group_key
    repo.unmark_departing(ctx.engine, req.token, group)
    res = req.reservation
    send_at = res.server_now + (time.monotonic() - res.local_now) + got
    slot = req.admission.slot if req.admission is not None else None
    park_booking(ctx, req.account, Booking(req.token, group, send_at, slot, req.stamp_at), got)
    req.parked = True
    return False


def _check_recipients(req: _Request) -> bool:
    """The per-recipient caps on the departure clock: a recipient whose window is full now is
    deferred, not sent (judged at its slot alone, late departures broke the caps). False: no
    recipient is left to send."""
    if req.reservation is None or not req.account.recipient_caps:
        return True
    phones = [r.phone for r in req.rows]
    check = req.ctx.limiter.depart_recipients(req.account, phones, req.stamp_at)
    req.recipients = check.departure
    if not check.refused:
        return True
    now = req.ctx.clock()
    why = "held by a recipient window at departure"
    held = [
        repo.Update.deferred(req.rows[i].id, due, "rate_window", why)
        for i, due in check.refused.items()
    ]
    left = [r for i, r in enumerate(req.rows) if i not in check.refused]
    if not left:
        repo.unmark_departing(req.ctx.engine, req.token, req.rows[0].group_key)
    repo.apply(req.ctx.engine, req.token, held, now, finish=req.rows[0].group_key)
    req.report.add("deferred", len(held))
    _keep(req, left)
    return bool(left)


def _keep(req: _Request, left: list[repo.Claimed]) -> None:
    """Send only ``left`` of the batch (the request is rebuilt before it goes)."""
    ids = {r.id for r in left}
    req.rows = left
    req.messages = [m for m in req.messages if m.id in ids]


def _drop_expired(req: _Request) -> bool:
    """Rows whose expiry passed while they waited for their slot become ``expired``: never
    sent late. False: none is left to send (the batch is finished)."""
    now = req.ctx.clock()
    late = [r for r in req.rows if r.expires_at is not None and r.expires_at <= now]
    if not late:
        return True
    text = "not sent before its expiry"
    updates = [repo.Update(r.id, EXPIRED, None, repo.EXPIRED_CODE, text) for r in late]
    repo.apply(req.ctx.engine, req.token, updates, now, finish=req.rows[0].group_key)
    req.report.add(EXPIRED, len(late))
    metrics.record_message_counts(req.account, {EXPIRED: len(late)})
    _refund(req, late)
    _keep(req, [r for r in req.rows if r not in late])
    return bool(req.rows)


def _on_written(req: _Request) -> Callable[[], None] | None:
    """Confirm the account's and the recipients' departures once the body is written."""
    confirms = [d.written for d in (req.departure, req.recipients) if d is not None]
    if len(confirms) < 2:
        return confirms[0] if confirms else None

    def both() -> None:
        for confirm in confirms:
            confirm()

    return both


def _send(req: _Request, request: HttpRequest) -> HttpResponse:
    req.report.requests += 1
    req.started = time.perf_counter()
    confirm = _on_written(req)

    def on_written() -> None:
        req.written = time.perf_counter()
        if confirm is not None:
            confirm()
        if req.mark_flight is not None:
            req.mark_flight()
            req.mark_flight = None

    response = req.ctx.transport.send(request, req.account.timeout_s, on_written)
    answered = time.perf_counter()
    req.latency = answered - req.started
    if req.written is not None:
        head = answered if response.head_at is None else response.head_at
        if req.departure is not None:
            # The provider had the request by its answer's head: the window's exact bound.
            req.departure.answered(head - req.written)
        if req.reservation is not None:
            # What the adaptive margin follows: the write → answer time bounds write → arrival.
            req.answer_s = head - req.written
    return response


def _failed(req: _Request, exc: DispatchError) -> list[repo.Update]:
    """One error covers the whole batch."""
    if exc.throttled:
        req.ctx.limiter.report_throttled(req.account, retry_after_s=exc.retry_after)
    ids = [r.id for r in req.rows]
    now = req.ctx.clock()
    if exc.unwell and req.ctx.circuit.failure(req.account, now, exc).is_open:
        # The provider is down, not these recipients' requests: they wait ``queued`` with
        # the attempt given back, claimed again once a probe finds it well, or move on to
        # their route's next account (never sent: the claim still holds them). A request
        # that may have been acted on still goes to reconciliation.
        if not exc.may_have_been_sent:
            why = dict.fromkeys(ids, (failover.PAUSED, exc.code, exc.message))
            failover.reroute_claimed(req.ctx, req.account, req.token, why)
            failover.drain(req.ctx, req.account)
        return outcomes.paused(req.account, ids, req.attempts, exc, now)
    # Moved messages are no longer held by the claim: their outcome below is not written.
    failover.reroute_error(req.ctx, req.account, req.token, ids, exc)
    return outcomes.batch_failure(req.account, ids, req.attempts, exc, now)


def _classify(req: _Request, items: Sequence[ItemOutcome]) -> list[repo.Update]:
    """The provider's answer per message."""
    refused = {
        item.message_id: (failover.REFUSED, item.error_code, item.error_text)
        for item in items
        if item.status == "failed" and failover.worth_another(req.account, item.error_code)
    }
    # Refused only by this account: a routed message moves on (its outcome is then not
    # written here, the claim no longer holds it).
    failover.reroute_claimed(req.ctx, req.account, req.token, refused)
    updates = outcomes.item_updates(req.account, items, req.attempts, req.ctx.clock())
    deferred = [item for item in items if item.status == "deferred"]
    if deferred:  # rare: no id -> phone map for the common all-sent answer
        phones = {r.id: r.phone for r in req.rows}
        for item in deferred:
            if item.message_id in phones:
                # The provider's own per-number cap (NXCloud 13007): every worker holds it.
                req.ctx.limiter.defer_recipient(req.account, phones[item.message_id], item.retry_in)
    return updates


def _may_have_left(req: _Request) -> bool:
    """Whether the provider may have the request: written, or begun and not known unsent."""
    if req.written is not None:
        return True
    if req.started is None:
        return False
    failure = req.failure
    return not (isinstance(failure, DispatchError) and not failure.may_have_been_sent)


def _refund(req: _Request, rows: Sequence[repo.Claimed]) -> None:
    """``rows`` do not leave with this request: take back the recipient stamps they hold, or
    their next reservation would count them and defer a message nothing was sent for.

    Before the departure check they hold their reservation's stamps; after it, the pending
    ones it granted (it already replaced the reservation's). Never raises: a stamp left
    behind only over-counts.
    """
    if req.reservation is None or not req.account.recipient_caps or not rows:
        return
    phones = [r.phone for r in rows]
    slot_at, departure = (req.stamp_at, None) if req.recipients is None else (None, req.recipients)
    try:
        req.ctx.limiter.refund_recipients(req.account, phones, slot_at, departure)
    except Exception as exc:  # any failure: the rows go back all the same
        log.warning("recipient refund failed (%s); the stamps count until they expire", exc)


def _release(req: _Request) -> None:
    if not req.parked and not _may_have_left(req):
        _refund(req, req.rows)
    for departure in (req.departure, req.recipients):
        if departure is not None:
            departure.written()  # no-op if the body was written; else: it can no longer leave
    if req.admission is not None and req.admission.slot is not None and not req.parked:
        limiter = req.ctx.limiter
        limiter.release_slot(req.account, req.admission.slot)
        if limiter.slots.take_want(req.account):
            # A dispatch found every slot taken and left (it does not wait): wake it now.
            wakeups.kick(req.ctx.redis, req.ctx.publish, req.account, 0)


def _record(req: _Request, updates: list[repo.Update]) -> None:
    """Metrics, the report, and every outcome written with the batch row's finish."""
    account = req.account
    # Counted once per status, not once per message, for the report and the metrics alike.
    statuses = Counter(map(_status, updates))
    for status, n in statuses.items():
        req.report.add(status, n)
    if req.started is not None:
        if req.latency is None:  # the transport raised: the time until it gave up
            req.latency = time.perf_counter() - req.started
        retried = sum(1 for n in req.attempts.values() if n > 1)
        outcome = metrics.outcome_of(req.failure)
        if req.failure is not None:
            req.report.add_failure(outcome)
        metrics.record_request(account, outcome, len(req.rows), req.latency, retried)
    metrics.record_message_counts(account, statuses)
    # Every message of the batch has its outcome: its batch row goes with the same commit.
    group = req.rows[0].group_key
    repo.apply(req.ctx.engine, req.token, updates, req.ctx.clock(), finish=group)
