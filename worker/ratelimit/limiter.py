"""The global rate limiter: every worker on every machine asks Redis before it sends.

Celery's ``rate_limit`` counts per worker process, so N processes would send N times the limit.
Here one atomic Lua call per batch decides, on the Redis server's clock, which recipients go,
in which reserved send slot, and records the use in the same step, so the limits hold across
any number of workers. See ``worker/lua/reserve.lua`` for the exact algorithm.

Why a jitter margin
    Slots are computed on the Redis clock, but the provider counts arrivals. Requests spaced
    exactly ``1/N`` apart put ``N + 1`` arrivals in one 1-second window as soon as one request
    of a run of ``N + 1`` travels a little slower than the last. Every window is therefore enforced
    as ``window + jitter_s``: ``N + 1`` consecutive slots then span ``1 + jitter_s`` seconds, and
    no 1-second window at the provider sees more than ``N`` unless the one-way latency of two
    requests differs by more than ``jitter_s`` (wake-up lateness included). The default, 20 ms,
    costs 2 % of the rate (98 % utilisation, the goal) and covers sleep overshoot (< 1 ms
    idle, a few ms loaded), Redis round-trip variance and keep-alive HTTP latency spread within a
    region. Raise it for a provider far away or reached over fresh TLS connections.

Why departures are confirmed
    The margin cannot cover a worker descheduled between its slot and its write (tens of
    milliseconds on a loaded machine). :meth:`RateLimiter.depart` is therefore a sliding-window
    gate on *written* times: each grant stays pending (counted as departing at every later
    decision's "now") until :class:`~worker.ratelimit.departure.Departure` confirms the measured
    write time, so the worker side never puts more than the limit in any window + jitter_s.

Why a late wake still sends
    With the gate exact, a sender that wakes late cannot over-send: the gate holds whoever would
    bunch with it. Giving its slot up instead (the earlier rule, at 10 ms) lost 7 % of the rate
    on a loaded 2-core machine. :meth:`Reservation.wait_for_slot` only refuses a wake more than
    ``late_limit_s`` (default 1 s) after the slot: later than that, the hour/day and recipient
    budgets it charged belong to a moment too far from the send, and the batch is given back.
    Code that sends on reservations alone, without the gate, must pass a small ``late_limit_s``.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import redis

from teledispatch.config import AccountConfig

from .departure import Departure, ungated
from .scripts import Scripts

#: Token returned by :meth:`RateLimiter.acquire_slot` for accounts without a concurrency limit.
UNLIMITED = "unlimited"

_US = 1_000_000

#: Default ``late_limit_s``: see "Why a late wake still sends" above.
LATE_LIMIT_S = 1.0

#: Default longest wait at the departure gate before giving the batch back. Reservations come
#: at the full rate, but each departure pushes the one ten places later by its own lateness, so
#: the gate drains a little slower and, after late wakes, a queue forms in front of it. Processes
#: waiting there are not reserving or sending: a queue of 2 s (the old bound) starved the pool
#: (93-95 % utilisation); refusing waits beyond a couple of slots drops the queue's tail instead.
DEPART_TIMEOUT_S = 0.25

#: How long a granted but unconfirmed departure counts as departing "now". Every live sender
#: confirms within its connect timeout (at most 5 s, see ``worker/transport.py``) plus one write
#: of a small body, and confirms on any failure too; only a sender that died between grant and
#: write outlives this, and its place is then held for the lease plus one window.
DEPART_LEASE_S = 10.0


@dataclass(frozen=True, slots=True)
class AccountKeys:
    """Every Redis key of one account; the ``{name}`` hash tag keeps them in one Cluster slot."""

    base: str

    @classmethod
    def of(cls, prefix: str, account: str) -> AccountKeys:
        if "{" in account or "}" in account:
            raise ValueError(f"account name {account!r} must not contain braces (hash tag)")
        return cls(f"{prefix}:{{{account}}}")

    @property
    def state(self) -> str:
        return f"{self.base}:state"

    @property
    def mlog(self) -> str:
        return f"{self.base}:mlog"

    @property
    def hour(self) -> str:
        return f"{self.base}:hour"

    @property
    def day(self) -> str:
        return f"{self.base}:day"

    @property
    def slots(self) -> str:
        return f"{self.base}:slots"

    @property
    def slots_wake(self) -> str:
        return f"{self.base}:slots:wake"

    @property
    def departures(self) -> str:
        return f"{self.base}:departures"

    def recipient(self, phone: str) -> str:
        return f"{self.base}:r:{phone}"


@dataclass(frozen=True, slots=True)
class Reservation:
    """The decision for one batch. Every index of the batch is in exactly one of
    ``admitted``, ``deferred`` or ``retry``.

    ``deferred`` recipients are over a per-recipient cap, blocked by the provider, or beyond
    the hour/day budget: put them back with a not-before time. ``retry`` recipients only
    lacked a request/message slot within ``max_wait_s``: ask again after ``wait_s``.
    """

    admitted: tuple[int, ...]
    #: index -> epoch seconds (server clock) from which it may be tried again
    deferred: Mapping[int, float]
    retry: tuple[int, ...]
    #: epoch seconds (server clock) of the reserved slot; None if nothing was admitted
    send_at: float | None
    #: seconds before asking again for the ``retry`` indices (0 if there are none)
    wait_s: float
    #: the server clock when the decision was taken
    server_now: float
    late_limit_s: float = 0.01
    #: ``time.monotonic()`` that corresponds to ``server_now`` (midpoint of the round trip)
    local_now: float = field(default_factory=time.monotonic)

    @property
    def delay_s(self) -> float:
        """How long after the decision the slot starts (what to sleep)."""
        return 0.0 if self.send_at is None else max(0.0, self.send_at - self.server_now)

    def wait_for_slot(
        self,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> bool:
        """Sleep until the slot; False if we woke more than ``late_limit_s`` after it.

        A late send could land inside the next slot's window, so on False do not send: the
        slot is lost (under-use, never over-use) and the batch should be reserved again.
        """
        if self.send_at is None:
            return False
        target = self.local_now + self.delay_s
        remaining = target - clock()
        if remaining > 0:
            sleep(remaining)
        return clock() - target <= self.late_limit_s


def _now_arg(now_ms: float | None) -> str:
    return "" if now_ms is None else str(round(now_ms * 1000))


class RateLimiter:
    """Global limits per account, shared through Redis by every worker.

    Throttling (``report_throttled``) multiplies the account's request and message rates by
    ``throttle_decrease`` (at most once per ``throttle_cooldown_s``, since every request in
    flight fails together), never below ``throttle_floor``; the rate then climbs back by
    ``throttle_recovery_per_s`` of the configured rate per second. Recovery is a function of
    time only, so successful sends need no report and no extra round trip.
    """

    def __init__(
        self,
        redis_client: redis.Redis[Any],
        *,
        key_prefix: str = "td:rl",
        jitter_s: float = 0.02,
        late_limit_s: float | None = None,
        window_buckets: int = 60,
        throttle_decrease: float = 0.5,
        throttle_floor: float = 0.05,
        throttle_recovery_per_s: float = 0.02,
        throttle_cooldown_s: float = 1.0,
        depart_lease_s: float = DEPART_LEASE_S,
    ) -> None:
        if jitter_s < 0 or window_buckets < 1:
            raise ValueError("jitter_s must be >= 0 and window_buckets >= 1")
        if not 0 < throttle_floor <= throttle_decrease < 1 or throttle_recovery_per_s < 0:
            raise ValueError("need 0 < throttle_floor <= throttle_decrease < 1, recovery >= 0")
        self._redis = redis_client
        self._scripts = Scripts.register(redis_client)
        self.key_prefix = key_prefix
        self.jitter_s = jitter_s
        self.late_limit_s = LATE_LIMIT_S if late_limit_s is None else late_limit_s
        self.window_buckets = window_buckets
        self.throttle_decrease = throttle_decrease
        self.throttle_floor = throttle_floor
        self.throttle_recovery_per_s = throttle_recovery_per_s
        self.throttle_cooldown_s = throttle_cooldown_s
        self.depart_lease_s = depart_lease_s

    def keys(self, account: AccountConfig) -> AccountKeys:
        return AccountKeys.of(self.key_prefix, account.name)

    def server_time(self) -> float:
        """Epoch seconds on the Redis clock, the clock every slot and due time is on."""
        sec, usec = self._redis.time()
        return float(sec) + float(usec) / _US

    def reserve(
        self,
        account: AccountConfig,
        phones: Sequence[str],
        *,
        max_wait_s: float = 1.0,
        now_ms: float | None = None,
    ) -> Reservation:
        """Decide a batch in one round trip; admitted recipients are charged at once.

        Phones are the keys of the per-recipient caps, so pass them in one canonical form
        (E.164). ``max_wait_s`` bounds how far ahead a slot may be reserved: larger means fewer
        calls while saturated, smaller means a fresher decision. ``now_ms`` replaces the
        server clock, for tests only.
        """
        if not phones:
            return Reservation((), MappingProxyType({}), (), None, 0.0, 0.0, self.late_limit_s)
        k = self.keys(account)
        caps: list[str] = []
        for cap in account.recipient_caps:
            caps += [str(cap.count), str(round(cap.window_s * _US))]
        args = [
            _now_arg(now_ms),
            str(round(max_wait_s * _US)),
            str(round(self.jitter_s * _US)),
            repr(float(account.max_requests_per_second or 0)),
            repr(float(account.max_messages_per_second or 0)),
            str(account.max_messages_per_hour or 0),
            str(account.max_messages_per_day or 0),
            str(self.window_buckets),
            repr(float(self.throttle_recovery_per_s)),
            str(len(account.recipient_caps)),
            *caps,
        ]
        keys = [k.state, k.mlog, k.hour, k.day, *(k.recipient(p) for p in phones)]
        before = time.monotonic()
        raw: Any = self._scripts.reserve(keys=keys, args=args, client=self._redis)
        after = time.monotonic()
        send_at_us, now_us, wait_us, admitted, deferred_flat, retry = raw
        deferred = {
            int(deferred_flat[j]): int(deferred_flat[j + 1]) / _US
            for j in range(0, len(deferred_flat), 2)
        }
        return Reservation(
            admitted=tuple(int(i) for i in admitted),
            deferred=MappingProxyType(deferred),
            retry=tuple(int(i) for i in retry),
            send_at=int(send_at_us) / _US if int(send_at_us) else None,
            wait_s=int(wait_us) / _US,
            server_now=int(now_us) / _US,
            late_limit_s=self.late_limit_s,
            local_now=(before + after) / 2,
        )

    def depart(
        self,
        account: AccountConfig,
        messages: int,
        *,
        timeout_s: float = DEPART_TIMEOUT_S,
        now_ms: float | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> Departure | None:
        """Ask to write a request right now; None if the window stayed full for ``timeout_s``
        (then do not send: re-queue). Call ``written()`` on the result once the body is written.

        The reservation spaced the slots; this checks the sliding window on real write times,
        so a sender descheduled after its slot (or after this grant) cannot bunch with the next.
        ``clock`` measures the lateness the confirmation reports (tests inject one).
        """
        window_s, max_req, max_msg = self._departure_window(account)
        if not max_req and not max_msg:
            return ungated()
        key = self.keys(account).departures
        ttl_ms = str(round((window_s + self.depart_lease_s) * 1000) + 1000)

        def confirm(pending: str, lateness_s: float) -> object:
            return self._scripts.confirm(
                keys=[key],
                args=[pending, str(round(lateness_s * _US)), ttl_ms],
                client=self._redis,
            )

        deadline = clock() + timeout_s
        token = secrets.token_hex(8)
        while True:
            started = clock()
            raw: Any = self._scripts.depart(
                keys=[key],
                args=[
                    _now_arg(now_ms),
                    str(round(window_s * _US)),
                    str(max_req),
                    str(max_msg),
                    str(messages),
                    token,
                    str(round(self.depart_lease_s * _US)),
                ],
                client=self._redis,
            )
            wait = int(raw[0]) / _US
            if wait == 0:
                member = raw[2].decode() if isinstance(raw[2], bytes) else str(raw[2])
                return Departure(member, started, confirm, clock)
            if now_ms is not None or clock() + wait > deadline:
                return None
            sleep(wait)

    def _departure_window(self, account: AccountConfig) -> tuple[float, int, int]:
        """(window_s, requests, messages) per window of the departure gate; 0 = no limit.

        Whole numbers per window, as reserve.lua floors them: 2.5/s allows 2 in any window.
        """
        per_s = account.max_requests_per_second
        msg_s = account.max_messages_per_second
        window_s = 1.0 + self.jitter_s
        max_req = max(1, int(per_s)) if per_s else 0
        max_msg = max(1, int(msg_s)) if msg_s else 0
        if per_s and per_s < 1:
            window_s, max_req = 1.0 / per_s + self.jitter_s, 1
        return window_s, max_req, max_msg

    def report_throttled(
        self,
        account: AccountConfig,
        *,
        retry_after_s: float | None = None,
        now_ms: float | None = None,
    ) -> float:
        """The provider answered 13008 / HTTP 429: slow every worker of the account down.

        Returns the factor now applied to the configured rates (1.0 = full rate).
        """
        raw: Any = self._scripts.throttle(
            keys=[self.keys(account).state],
            args=[
                _now_arg(now_ms),
                repr(self.throttle_decrease),
                repr(self.throttle_floor),
                repr(self.throttle_recovery_per_s),
                str(round(self.throttle_cooldown_s * _US)),
                str(round((retry_after_s or 0.0) * _US)),
            ],
            client=self._redis,
        )
        return int(raw) / _US

    def throttle_factor(self, account: AccountConfig, *, now_ms: float | None = None) -> float:
        """The factor applied to the account's rates now (for metrics and the ETA)."""
        f0, t0 = self._redis.hmget(self.keys(account).state, ["f0", "t0"])
        if f0 is None or t0 is None:
            return 1.0
        now_us = now_ms * 1000 if now_ms is not None else self.server_time() * _US
        recovered = float(f0) + self.throttle_recovery_per_s * (now_us - float(t0)) / _US
        return min(1.0, recovered)

    def defer_recipient(
        self,
        account: AccountConfig,
        phone: str,
        seconds: float | None = None,
        *,
        now_ms: float | None = None,
    ) -> float:
        """The provider says this number hit its own cap (NXCloud 13007): hold it back.

        By default for the account's longest recipient window (one hour if none is
        configured: NXCloud's documented 5 per number per hour). Returns the epoch seconds
        (server clock) until which ``reserve`` defers the number.
        """
        if seconds is None:
            windows = [cap.window_s for cap in account.recipient_caps]
            seconds = max(windows, default=3600.0)
        raw: Any = self._scripts.defer(
            keys=[self.keys(account).recipient(phone)],
            args=[_now_arg(now_ms), str(round(seconds * _US))],
            client=self._redis,
        )
        return int(raw) / 1000

    def acquire_slot(
        self,
        account: AccountConfig,
        *,
        lease_s: float,
        timeout_s: float = 0.0,
        token: str | None = None,
        now_ms: float | None = None,
    ) -> str | None:
        """Take one of the account's ``concurrency`` in-flight slots; None after ``timeout_s``.

        The slot frees itself ``lease_s`` after acquiring (a crashed worker loses nothing
        for longer); pass the same ``token`` again to renew a long request's lease. Waiting
        blocks on a wake list that ``release_slot`` pushes to, bounded by the soonest lease
        expiry, so waiters neither poll nor sleep past a free slot by more than a round trip.
        """
        if account.concurrency is None:
            return UNLIMITED
        k = self.keys(account)
        token = token or secrets.token_hex(8)
        deadline = time.monotonic() + timeout_s
        while True:
            raw: Any = self._scripts.slot_acquire(
                keys=[k.slots],
                args=[_now_arg(now_ms), str(account.concurrency), str(round(lease_s * _US)), token],
                client=self._redis,
            )
            if int(raw[0]) == 1:
                return token
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            # BLPOP's timeout 0 means "forever": keep it positive and bounded.
            self._redis.blpop([k.slots_wake], timeout=max(0.01, min(remaining, raw[1] / _US)))

    def release_slot(self, account: AccountConfig, token: str) -> bool:
        """Give the slot back; False if its lease had already run out."""
        if token == UNLIMITED or account.concurrency is None:
            return True
        k = self.keys(account)
        raw: Any = self._scripts.slot_release(
            keys=[k.slots, k.slots_wake],
            args=[token, str(account.concurrency)],
            client=self._redis,
        )
        return int(raw) == 1
