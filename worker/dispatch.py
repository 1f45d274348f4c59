"""Claim due messages of one account, send them in provider-sized requests, record outcomes.

Messages of every job of the account are claimed together, so single-recipient jobs share
requests with each other and with big jobs. If a claim comes back full, another dispatch is
published *before* this one sends, so a backlog is worked by every free worker process at
once; an unpaced account's task then keeps claiming for a short while (``LOOP_BUDGET_S``).
"""

from __future__ import annotations

import logging
import random
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from operator import attrgetter

from teledispatch.channels.base import Adapter, ItemOutcome, OutMessage
from teledispatch.channels.registry import adapter_for
from teledispatch.config import AccountConfig
from teledispatch.db import messages as repo
from teledispatch.errors import DispatchError, MalformedResponseError
from teledispatch.statuses import DEFERRED, FAILED, QUEUED, SENT, UNKNOWN
from teledispatch.worker import metrics
from teledispatch.worker.context import Context
from teledispatch.worker.kick import follow_up, follow_up_started, kick
from teledispatch.worker.ratelimit import Departure, Reservation

log = logging.getLogger("teledispatch.dispatch")

#: How far ahead a batch may book its request slot and then wait for it. Too short and, with
#: more processes than slots in the horizon, most claims find no slot and hand their rows
#: back (a claim, a write and a wake-up each, for nothing: 208 of them in a 30 s run at 10/s
#: with 12 processes at 1 s); the lease (timeout + 10 s) bounds it from above.
RESERVE_AHEAD_S = 3.0

#: A claim is held for the request's timeout plus this: the rate-slot wait (at most about a
#: second) and writing the outcome. Shorter leases mean faster recovery from a dead worker.
LEASE_MARGIN_S = 10.0

_status = attrgetter("status")


@dataclass
class Report:
    claimed: int = 0
    requests: int = 0
    counts: dict[str, int] = field(default_factory=dict)

    def add(self, status: str, n: int = 1) -> None:
        self.counts[status] = self.counts.get(status, 0) + n


def backoff(
    account: AccountConfig,
    attempts: int,
    retry_after: float | None = None,
    jitter: float | None = None,
) -> float:
    """Exponential backoff with jitter: ``base·2^(n-1)``, capped, drawn from its upper half.

    Half-jitter keeps retries of one failed batch from arriving together, while never
    retrying sooner than half the nominal delay; a provider's ``Retry-After`` wins if longer.
    """
    nominal = min(account.backoff_max_s, account.backoff_base_s * 2.0 ** max(attempts - 1, 0))
    delay = nominal * (0.5 + (random.random() if jitter is None else jitter) / 2)
    return max(delay, retry_after or 0.0)


#: An account that nothing paces but the work itself keeps its task claiming while claims
#: come back full, for up to this long. A Celery task costs the worker ~3 ms of CPU of its
#: own (events, acknowledgement, the follow-up's publish; py-spy over the pool): 17 µs for
#: each message of a 200-message batch, a third of the worker's cost, when every task sent
#: one request. Bounded so that a pool process soon returns to other accounts' tasks.
LOOP_BUDGET_S = 0.5


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
        follow_up_started(ctx, account)
    deadline = time.monotonic() + LOOP_BUDGET_S
    followed = False
    while _claim_and_send(ctx, account, adapter, report, followed, gated=not paced):
        followed = True
        if paced:
            break
        if time.monotonic() >= deadline:
            # More is waiting and this task's turn is over: another carries on, unless one
            # is already waiting to start.
            follow_up(ctx, account, once=True)
            break
    return report


def _claim_and_send(
    ctx: Context,
    account: AccountConfig,
    adapter: Adapter,
    report: Report,
    followed: bool,
    *,
    gated: bool = False,
) -> bool:
    """One claim, sent; True if it came back full and nothing had to wait (more to do now).

    Once per task (``followed`` False), a full claim publishes the next dispatch *before*
    sending, so a backlog is worked by every free worker process at once; ``gated``: only if
    none is already waiting to start (:func:`worker.kick.follow_up`).
    """
    now = time.time()
    limit = account.batch_size
    claim = repo.claim(ctx.engine, account.name, limit, account.timeout_s + LEASE_MARGIN_S, now)
    report.claimed += len(claim.messages)
    if not claim.messages:
        return False
    full = len(claim.messages) >= limit
    waits: list[float] = []
    groups: dict[str, list[repo.Claimed]] = {}
    for row in claim.messages:
        groups.setdefault(row.group_key, []).append(row)
    for rows in groups.values():
        admission = admit(ctx, account, claim.token, rows, report)
        if admission.wait_s:
            waits.append(admission.wait_s)
        elif full and not followed:
            # More is waiting and the limits allow it: the next claim starts now, in another
            # process, while this one sends. Not when the limiter said wait (that would spin).
            follow_up(ctx, account, once=gated)
            followed = True
        if admission.rows:
            send_batch(ctx, account, adapter, claim.token, admission.rows, report, admission)
    if waits or (full and not followed):
        kick(ctx, account, delay_s=max(min(waits, default=0.05), 0.05))
    return full and not waits


def has_limits(account: AccountConfig) -> bool:
    return bool(
        account.max_requests_per_second
        or account.max_messages_per_second
        or account.max_messages_per_hour
        or account.max_messages_per_day
        or account.recipient_caps
    )


@dataclass
class Admission:
    """What the global limits let through for one request."""

    rows: list[repo.Claimed]
    reservation: Reservation | None = None
    slot: str | None = None
    #: Seconds until the held-back rows may be tried (0: nothing is waiting on a budget).
    wait_s: float = 0.0


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
    now = time.time()
    slot = None
    if account.concurrency is not None:
        slot = ctx.limiter.acquire_slot(
            account, lease_s=account.timeout_s + LEASE_MARGIN_S, timeout_s=1.0
        )
        if slot is None:
            held = [repo.Update(r.id, QUEUED, None, None, None, now + 0.2, True) for r in rows]
            repo.apply(ctx.engine, token, held, now, finish=rows[0].group_key)
            report.add("waiting", len(held))
            return Admission([], wait_s=0.2)
    if not has_limits(account):
        return Admission(rows, slot=slot)
    res = ctx.limiter.reserve(account, [r.phone for r in rows], max_wait_s=RESERVE_AHEAD_S)
    held = [
        repo.Update(rows[i].id, DEFERRED, None, "rate_window", "held by a rate window", due, True)
        for i, due in res.deferred.items()
    ]
    held += [
        repo.Update(rows[i].id, QUEUED, None, None, None, now + res.wait_s, True) for i in res.retry
    ]
    if held:
        repo.apply(ctx.engine, token, held, now, finish=rows[0].group_key)
        report.add("deferred", len(res.deferred))
        report.add("waiting", len(res.retry))
    admitted = [rows[i] for i in res.admitted]
    if not admitted and slot is not None:
        ctx.limiter.release_slot(account, slot)
        slot = None
    return Admission(admitted, res, slot, res.wait_s if res.retry else 0.0)


def send_batch(  # noqa: C901  (phase-1 move; being split)
    ctx: Context,
    account: AccountConfig,
    adapter: Adapter,
    token: str,
    rows: Sequence[repo.Claimed],
    report: Report,
    admission: Admission | None = None,
) -> None:
    messages = [OutMessage(r.id, r.phone, repo.payload_of(r.payload)) for r in rows]
    attempts = {r.id: r.attempts for r in rows}
    reservation = admission.reservation if admission else None
    started: float | None = None  # set when the request leaves: it then counts as one
    departure: Departure | None = None
    latency: float | None = None
    failure: BaseException | None = None
    try:
        request = adapter.build_request(account, messages, time.time())
        ctx.transport.warm()
        if reservation is not None and not reservation.wait_for_slot():
            # Woke too late for the reserved slot: sending now could crowd the next second.
            now = time.time()
            updates = [repo.Update(r.id, QUEUED, None, None, None, now, True) for r in rows]
            report.add("waiting", len(updates))
            repo.apply(ctx.engine, token, updates, now, finish=rows[0].group_key)
            kick(ctx, account, delay_s=0.05)
            return
        if not repo.mark_departing(ctx.engine, token, rows[0].group_key, time.time()):
            # The lease expired while we waited (a stalled process): the sweep has taken
            # the batch back or may at any moment, and sending now could duplicate a resend.
            # Give back whatever is still ours.
            now = time.time()
            updates = [repo.Update(r.id, QUEUED, None, None, None, now, True) for r in rows]
            report.add("lease_lost", len(rows))
            repo.apply(ctx.engine, token, updates, now, finish=rows[0].group_key)
            return
        departure = ctx.limiter.depart(account, len(rows)) if reservation is not None else None
        if reservation is not None and departure is None:
            # The departure window stayed full: give the batch back undeparted.
            now = time.time()
            updates = [repo.Update(r.id, QUEUED, None, None, None, now, True) for r in rows]
            report.add("waiting", len(rows))
            repo.unmark_departing(ctx.engine, token, rows[0].group_key)
            repo.apply(ctx.engine, token, updates, now, finish=rows[0].group_key)
            kick(ctx, account, delay_s=0.05)
            return
        report.requests += 1
        started = time.perf_counter()
        on_written = departure.written if departure is not None else None
        response = ctx.transport.send(request, account.timeout_s, on_written)
        latency = time.perf_counter() - started
        result = adapter.parse_response(messages, response.status, response.headers, response.body)
    except DispatchError as exc:
        failure = exc
        if exc.throttled:
            ctx.limiter.report_throttled(account, retry_after_s=exc.retry_after)
        updates = batch_failure(account, [r.id for r in rows], attempts, exc)
    except Exception as exc:  # a bug in an adapter must not leave the batch claimed
        log.exception("adapter %s failed on account %s", adapter.channel, account.name)
        failure = exc
        error = MalformedResponseError(f"internal error: {type(exc).__name__}", code="internal")
        updates = batch_failure(account, [r.id for r in rows], attempts, error)
    else:
        updates = item_updates(account, result.items, attempts)
        deferred = [item for item in result.items if item.status == "deferred"]
        if deferred:  # rare: no id -> phone map for the common all-sent answer
            phones = {r.id: r.phone for r in rows}
            for item in deferred:
                if item.message_id in phones:
                    # The provider's own per-number cap (NXCloud 13007): every worker holds it.
                    ctx.limiter.defer_recipient(account, phones[item.message_id], item.retry_in)
    finally:
        if departure is not None:
            departure.written()  # no-op if the body was written; else: it can no longer leave
        if admission is not None and admission.slot is not None:
            ctx.limiter.release_slot(account, admission.slot)
    # Counted once per status, not once per message, for the report and the metrics alike.
    statuses = Counter(map(_status, updates))
    for status, n in statuses.items():
        report.add(status, n)
    if started is not None:
        if latency is None:  # the transport raised: the time until it gave up
            latency = time.perf_counter() - started
        retried = sum(1 for n in attempts.values() if n > 1)
        metrics.record_request(account, metrics.outcome_of(failure), len(rows), latency, retried)
    metrics.record_message_counts(account, statuses)
    # Every message of the batch has its outcome: its batch row goes with the same commit.
    repo.apply(ctx.engine, token, updates, time.time(), finish=rows[0].group_key)


def batch_failure(
    account: AccountConfig, ids: Sequence[str], attempts: dict[str, int], exc: DispatchError
) -> list[repo.Update]:
    """One error covers every message of the request."""
    now = time.time()
    code, text = exc.code or type(exc).__name__, exc.message
    if exc.may_have_been_sent:
        return [ambiguous(account, i, attempts[i], code, text, now) for i in ids]
    if exc.throttled:
        delay = max(exc.retry_after or 0.0, 1.0)
        return [
            repo.Update(i, QUEUED, None, code, text, now + delay, refund_attempt=True) for i in ids
        ]
    if exc.retryable:
        # One draw per batch: its messages retry together (and are written by one statement);
        # batches still spread out from each other.
        jitter = random.random()
        return [
            retry(account, i, attempts[i], code, text, now, exc.retry_after, jitter) for i in ids
        ]
    return [repo.Update(i, FAILED, None, code, text) for i in ids]


def retry(
    account: AccountConfig,
    message_id: str,
    attempts: int,
    code: str,
    text: str,
    now: float,
    retry_after: float | None = None,
    jitter: float | None = None,
) -> repo.Update:
    if attempts >= account.max_attempts:
        return repo.Update(message_id, FAILED, None, code, f"{text} (after {attempts} attempts)")
    return repo.Update(
        message_id,
        QUEUED,
        None,
        code,
        text,
        now + backoff(account, attempts, retry_after, jitter),
    )


def ambiguous(
    account: AccountConfig, message_id: str, attempts: int, code: str, text: str, now: float
) -> repo.Update:
    """The request may have reached the provider: the account's policy decides."""
    if account.on_ambiguous == "resend":
        return retry(account, message_id, attempts, code, text, now)
    if account.on_ambiguous == "fail":
        return repo.Update(message_id, FAILED, None, code, f"{text} (may have been sent)")
    return repo.Update(message_id, UNKNOWN, None, code, text, now + repo.RECONCILE_AFTER_S)


def item_updates(
    account: AccountConfig, items: Sequence[ItemOutcome], attempts: dict[str, int]
) -> list[repo.Update]:
    now = time.time()
    updates: list[repo.Update] = []
    answered: set[str] = set()
    for item in items:
        if item.message_id not in attempts or item.message_id in answered:
            continue  # not in this batch, or answered twice: the first answer stands
        answered.add(item.message_id)
        n = attempts[item.message_id]
        code, text = item.error_code or item.status, item.error_text or ""
        if item.status == "sent":
            updates.append(repo.Update(item.message_id, SENT, item.provider_id))
        elif item.status == "failed":
            updates.append(repo.Update(item.message_id, FAILED, None, code, text))
        elif item.status == "deferred":
            due = now + (item.retry_in or 60.0)
            updates.append(repo.Update(item.message_id, DEFERRED, None, code, text, due, True))
        elif item.status == "retry":
            updates.append(retry(account, item.message_id, n, code, text, now))
        else:
            updates.append(ambiguous(account, item.message_id, n, code, text, now))
    for message_id, n in attempts.items():
        if message_id not in answered:
            text = "the provider's answer did not mention this message"
            updates.append(ambiguous(account, message_id, n, "missing", text, now))
    return updates
