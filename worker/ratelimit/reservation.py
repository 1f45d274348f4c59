"""Send slots: one atomic Lua call per batch decides, on the Redis server's clock, which
recipients go, in which reserved slot, and records the use in the same step, so the limits hold
across any number of workers. See ``worker/ratelimit/lua/reserve.lua`` for the algorithm.

Why a late wake still sends
    With the departure gate exact (see ``gate``), a sender that wakes late cannot over-send:
    the gate holds whoever would bunch with it. Giving its slot up instead (the earlier rule,
    at 10 ms) lost 7 % of the rate on a loaded 2-core machine. :meth:`Reservation.wait_for_slot`
    only refuses a wake more than ``late_limit_s`` (default 1 s) after the slot: later than that,
    the hour/day and recipient budgets it charged belong to a moment too far from the send, and
    the batch is given back. Code that sends on reservations alone, without the gate, must pass
    a small ``late_limit_s``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import redis

from teledispatch.config import AccountConfig

from .keys import AccountKeys
from .scripts import US, Scripts, now_arg

#: Default ``late_limit_s``: see "Why a late wake still sends" above.
LATE_LIMIT_S = 1.0


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


class Reserver:
    """Reserves send slots for batches: requests/s (GCRA, no burst), messages/s (an exact log),
    hour/day budgets (bucketed sliding windows) and per-recipient caps, in one round trip."""

    def __init__(
        self,
        redis_client: redis.Redis[Any],
        scripts: Scripts,
        *,
        key_prefix: str,
        jitter_s: float,
        late_limit_s: float,
        window_buckets: int,
        throttle_recovery_per_s: float,
        margin: Callable[[str], float] | None = None,
    ) -> None:
        self._redis = redis_client
        self._scripts = scripts
        self._key_prefix = key_prefix
        self._jitter_s = jitter_s
        self._margin = margin
        self._late_limit_s = late_limit_s
        self._window_buckets = window_buckets
        self._throttle_recovery_per_s = throttle_recovery_per_s

    def _margin_s(self, account: AccountConfig) -> float:
        """The margin every window of ``account`` is widened by (see ``margin``)."""
        return self._jitter_s if self._margin is None else self._margin(account.name)

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
            return Reservation((), MappingProxyType({}), (), None, 0.0, 0.0, self._late_limit_s)
        k = AccountKeys.of(self._key_prefix, account.name)
        caps: list[str] = []
        for cap in account.recipient_caps:
            caps += [str(cap.count), str(round(cap.window_s * US))]
        args = [
            now_arg(now_ms),
            str(round(max_wait_s * US)),
            str(round(self._margin_s(account) * US)),
            repr(float(account.max_requests_per_second or 0)),
            repr(float(account.max_messages_per_second or 0)),
            str(account.max_messages_per_hour or 0),
            str(account.max_messages_per_day or 0),
            str(self._window_buckets),
            repr(float(self._throttle_recovery_per_s)),
            str(len(account.recipient_caps)),
            *caps,
        ]
        keys = [k.state, k.mlog, k.hour, k.day, *(k.recipient(p) for p in phones)]
        before = time.monotonic()
        raw: Any = self._scripts.reserve(keys=keys, args=args, client=self._redis)
        after = time.monotonic()
        send_at_us, now_us, wait_us, admitted, deferred_flat, retry = raw
        deferred = {
            int(deferred_flat[j]): int(deferred_flat[j + 1]) / US
            for j in range(0, len(deferred_flat), 2)
        }
        return Reservation(
            admitted=tuple(int(i) for i in admitted),
            deferred=MappingProxyType(deferred),
            retry=tuple(int(i) for i in retry),
            send_at=int(send_at_us) / US if int(send_at_us) else None,
            wait_s=int(wait_us) / US,
            server_now=int(now_us) / US,
            late_limit_s=self._late_limit_s,
            local_now=(before + after) / 2,
        )
