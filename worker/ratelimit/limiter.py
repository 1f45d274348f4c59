"""The global rate limiter: every worker on every machine asks Redis before it sends.

Celery's ``rate_limit`` counts per worker process, so N processes would send N times the limit.
Here each limit lives in Redis, decided by atomic Lua on the Redis server's clock, so the
limits hold across any number of workers. :class:`RateLimiter` is the one object callers hold;
each mechanism is its own small class over the same keys (``keys``) and scripts (``scripts``):

* ``reservation``: send slots for a batch (requests/s, messages/s, hour/day, recipient caps);
* ``gate``: the departure gate on written times, the last check before a request leaves;
* ``throttle``: slowing the account down when the provider says "too fast";
* ``recipients``: holding back a number the provider says hit its own cap, and checking the
  per-recipient caps again as a request leaves;
* ``slots``: at most ``concurrency`` requests in flight;
* ``booking``: batches parked until their slot, so no process sleeps for one;
* ``margin``: the margin each window is widened by, from measured answer times.

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

    With ``adaptive_margin`` (the default) ``jitter_s`` is the ceiling: every process measures
    the write → answer time of each request (``answers`` shares them through Redis) and
    enforces 1.5 × the largest recent one, at least 3 ms (``margin``); and once a request's
    answer is in, its entry in the departure window moves back to that answer's head, an exact
    bound on its arrival (``gate``), so a provider close by gets close to its full rate. The
    reservations then pace by the median answer time (``MarginEstimator.expected``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import redis

from teledispatch.config import AccountConfig

from .answers import SharedAnswers
from .booking import Bookings
from .gate import DEPART_LEASE_S, DEPART_TIMEOUT_S, Departure, DepartureGate
from .keys import AccountKeys
from .margin import MarginEstimator
from .recipients import RecipientDeparture, RecipientHolds
from .reservation import LATE_LIMIT_S, Reservation, Reserver
from .scripts import US, Scripts
from .slots import UNLIMITED, ConcurrencySlots
from .throttle import Throttle

__all__ = ["UNLIMITED", "AccountKeys", "RateLimiter", "Reservation"]


class RateLimiter:
    """Global limits per account, shared through Redis by every worker.

    Throttling (``report_throttled``) multiplies the account's request and message rates by
    ``throttle_decrease`` (at most once per ``throttle_cooldown_s``, since every request in
    flight fails together), never below ``throttle_floor``; the rate then climbs back by
    ``throttle_recovery_per_s`` of the configured rate per second (see ``throttle``).
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
        adaptive_margin: bool = True,
    ) -> None:
        if jitter_s < 0 or window_buckets < 1:
            raise ValueError("jitter_s must be >= 0 and window_buckets >= 1")
        self._redis = redis_client
        self.key_prefix = key_prefix
        scripts = Scripts.register(redis_client)  # local: register_script sends nothing
        self.margins = MarginEstimator(ceiling_s=jitter_s)
        self.answers = SharedAnswers(redis_client, self.margins, key_prefix=key_prefix)
        margin = self.margins.margin if adaptive_margin else None
        self.throttle = Throttle(
            redis_client,
            scripts,
            key_prefix=key_prefix,
            decrease=throttle_decrease,
            floor=throttle_floor,
            recovery_per_s=throttle_recovery_per_s,
            cooldown_s=throttle_cooldown_s,
        )
        self.reservations = Reserver(
            redis_client,
            scripts,
            key_prefix=key_prefix,
            jitter_s=jitter_s,
            late_limit_s=LATE_LIMIT_S if late_limit_s is None else late_limit_s,
            window_buckets=window_buckets,
            throttle_recovery_per_s=throttle_recovery_per_s,
            margin=self.margins.expected if adaptive_margin else None,
        )
        self.gate = DepartureGate(
            redis_client,
            scripts,
            key_prefix=key_prefix,
            jitter_s=jitter_s,
            lease_s=depart_lease_s,
            margin=margin,
        )
        self.recipients = RecipientHolds(
            redis_client,
            scripts,
            key_prefix=key_prefix,
            jitter_s=jitter_s,
            lease_s=depart_lease_s,
            margin=margin,
        )
        self.slots = ConcurrencySlots(redis_client, scripts, key_prefix=key_prefix)
        self.bookings = Bookings(redis_client, scripts, key_prefix=key_prefix)
        self._adaptive = adaptive_margin
        self._jitter_s = jitter_s

    def margin_s(self, account: AccountConfig) -> float:
        """The margin this process enforces on ``account``'s windows now (seconds)."""
        return self.margins.margin(account.name) if self._adaptive else self._jitter_s

    def observe_answer(self, account: AccountConfig, seconds: float) -> None:
        """A request of ``account`` was answered ``seconds`` after its body was written."""
        self.answers.observe(account.name, seconds)

    def keys(self, account: AccountConfig) -> AccountKeys:
        return AccountKeys.of(self.key_prefix, account.name)

    def server_time(self) -> float:
        """Epoch seconds on the Redis clock, the clock every slot and due time is on."""
        sec, usec = self._redis.time()
        return float(sec) + float(usec) / US

    def reserve(
        self,
        account: AccountConfig,
        phones: Sequence[str],
        *,
        max_wait_s: float = 1.0,
        now_ms: float | None = None,
    ) -> Reservation:
        """Reserve a send slot for a batch: :meth:`Reserver.reserve`."""
        return self.reservations.reserve(account, phones, max_wait_s=max_wait_s, now_ms=now_ms)

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
        """Ask to write a request right now: :meth:`DepartureGate.depart`."""
        return self.gate.depart(
            account, messages, timeout_s=timeout_s, now_ms=now_ms, sleep=sleep, clock=clock
        )

    def try_depart(
        self, account: AccountConfig, messages: int, *, timeout_s: float
    ) -> Departure | float:
        """Ask to write a request now, waiting at most ``timeout_s`` here: a
        :class:`Departure`, or the seconds the window stays full (``DepartureGate``)."""
        return self.gate.try_depart(account, messages, timeout_s=timeout_s)

    def depart_recipients(
        self,
        account: AccountConfig,
        phones: Sequence[str],
        slot_at: float | None,
        *,
        now_ms: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> RecipientDeparture:
        """Check the per-recipient caps as a request leaves: :meth:`RecipientHolds.depart`."""
        return self.recipients.depart(account, phones, slot_at, now_ms=now_ms, clock=clock)

    def refund_recipients(
        self,
        account: AccountConfig,
        phones: Sequence[str],
        slot_at: float | None,
        departure: Departure | None = None,
    ) -> int:
        """Messages that do not leave after all: :meth:`RecipientHolds.refund`."""
        return self.recipients.refund(account, phones, slot_at, departure)

    def report_throttled(
        self,
        account: AccountConfig,
        *,
        retry_after_s: float | None = None,
        now_ms: float | None = None,
    ) -> float:
        """The provider said "too fast": :meth:`Throttle.report`; returns the new factor."""
        return self.throttle.report(account, retry_after_s=retry_after_s, now_ms=now_ms)

    def throttle_factor(self, account: AccountConfig, *, now_ms: float | None = None) -> float:
        """The factor applied to the account's rates now (for metrics and the ETA)."""
        now_us = now_ms * 1000 if now_ms is not None else self.server_time() * US
        return self.throttle.factor(account, now_us=now_us)

    def defer_recipient(
        self,
        account: AccountConfig,
        phone: str,
        seconds: float | None = None,
        *,
        now_ms: float | None = None,
    ) -> float:
        """Hold a number back: :meth:`RecipientHolds.defer`; returns until when (epoch s)."""
        return self.recipients.defer(account, phone, seconds, now_ms=now_ms)

    def acquire_slot(
        self,
        account: AccountConfig,
        *,
        lease_s: float,
        timeout_s: float = 0.0,
        token: str | None = None,
        now_ms: float | None = None,
    ) -> str | None:
        """Take an in-flight slot: :meth:`ConcurrencySlots.acquire`; None after ``timeout_s``."""
        return self.slots.acquire(
            account, lease_s=lease_s, timeout_s=timeout_s, token=token, now_ms=now_ms
        )

    def release_slot(self, account: AccountConfig, token: str) -> bool:
        """Give an in-flight slot back: :meth:`ConcurrencySlots.release`."""
        return self.slots.release(account, token)
