"""Fault injection and the limits a real provider enforces (TPS, per-recipient caps).

All randomness comes from one seeded generator so a run with ``--seed`` is reproducible as long
as requests arrive in the same order.
"""

from __future__ import annotations

import random
import re
from bisect import bisect_left, bisect_right, insort
from dataclasses import dataclass

_CAP = re.compile(r"^\s*(\d+)\s*/\s*(\d+(?:\.\d+)?)?\s*([smhd])\s*$")
_UNIT_S = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


@dataclass(frozen=True, slots=True)
class RecipientCap:
    count: int
    window_s: float

    def __str__(self) -> str:
        return f"{self.count}/{self.window_s:g}s"


def parse_recipient_cap(text: str) -> RecipientCap:
    """``"5/1h"`` → 5 per 3600 s; ``"2/10s"``; the number before the unit may be left out."""
    m = _CAP.match(text)
    if not m:
        raise ValueError(f"recipient cap {text!r} must look like COUNT/WINDOW, e.g. 5/1h or 2/10s")
    count = int(m.group(1))
    window = float(m.group(2) or 1) * _UNIT_S[m.group(3)]
    if count <= 0 or window <= 0:
        raise ValueError(f"recipient cap {text!r} must have a positive count and window")
    return RecipientCap(count, window)


@dataclass(frozen=True, slots=True)
class FaultConfig:
    fail_rate: float = 0.0
    internal_error_rate: float = 0.0
    item_fail_rate: float = 0.0
    drop_response_rate: float = 0.0
    latency_ms: float = 0.0
    tps: int | None = None
    recipient_cap: RecipientCap | None = None
    dr_delay_ms: float = 1000.0
    dr_fail_rate: float = 0.0
    seed: int | None = None

    def __post_init__(self) -> None:
        for name in (
            "fail_rate",
            "internal_error_rate",
            "item_fail_rate",
            "drop_response_rate",
            "dr_fail_rate",
        ):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, not {value}")
        if self.fail_rate + self.internal_error_rate > 1.0:
            raise ValueError("fail_rate + internal_error_rate must not exceed 1")
        if self.latency_ms < 0 or self.dr_delay_ms < 0:
            raise ValueError("latency_ms and dr_delay_ms must not be negative")
        if self.tps is not None and self.tps <= 0:
            raise ValueError("tps must be positive")


class SlidingWindow:
    """At most ``limit`` events per key in any window of ``window_s`` seconds.

    Only admitted events are recorded: a refused attempt does not extend the block, so the
    count seen by the provider is exactly what a correct client limiter must keep under.
    Events are stamped on arrival but handled when their body is complete, so one may come
    a little out of order: it is checked against every window that would contain it.
    """

    __slots__ = ("_events", "limit", "window_s")

    def __init__(self, limit: int, window_s: float) -> None:
        self.limit = limit
        self.window_s = window_s
        #: key -> sorted admitted times within two windows of the latest
        self._events: dict[str, list[float]] = {}

    def admit(self, key: str, now: float) -> bool:
        events = self._events.setdefault(key, [])
        w = self.window_s
        # An event more than a window before the latest one shares no window with it or with
        # anything after it; one more window of history keeps late stamps exact.
        latest = max(now, events[-1]) if events else now
        del events[: bisect_right(events, latest - 2 * w)]
        # The windows (x - w, x] holding `now`: x = now, or x = a later event within w.
        ends = [now, *events[bisect_right(events, now) : bisect_left(events, now + w)]]
        for x in ends:
            if bisect_right(events, x) - bisect_right(events, x - w) >= self.limit:
                return False
        insort(events, now)
        return True

    def clear(self) -> None:
        self._events.clear()


class Faults:
    """Decisions about one request or item; the only owner of the random generator."""

    def __init__(self, config: FaultConfig) -> None:
        self.config = config
        self.rng = random.Random(config.seed)
        self._tps = SlidingWindow(config.tps, 1.0) if config.tps else None
        cap = config.recipient_cap
        self._recipients = SlidingWindow(cap.count, cap.window_s) if cap else None

    def reset(self) -> None:
        self.rng = random.Random(self.config.seed)
        if self._tps:
            self._tps.clear()
        if self._recipients:
            self._recipients.clear()

    def _hit(self, rate: float) -> bool:
        return rate > 0.0 and self.rng.random() < rate

    def server_error(self) -> int | None:
        """503 (``--fail-rate``) or 500 (``--internal-error-rate``) for the whole request."""
        cfg = self.config
        if cfg.fail_rate <= 0.0 and cfg.internal_error_rate <= 0.0:
            return None
        draw = self.rng.random()
        if draw < cfg.fail_rate:
            return 503
        if draw < cfg.fail_rate + cfg.internal_error_rate:
            return 500
        return None

    def throttled(self, account: str, now: float) -> bool:
        return self._tps is not None and not self._tps.admit(account, now)

    def item_fails(self) -> bool:
        return self._hit(self.config.item_fail_rate)

    def recipient_refused(self, channel: str, phone: str, now: float) -> bool:
        """Admit (and count) one message to ``phone``, or refuse it as over the cap."""
        if self._recipients is None:
            return False
        return not self._recipients.admit(f"{channel}|{phone.lstrip('+')}", now)

    def drop_response(self) -> bool:
        return self._hit(self.config.drop_response_rate)

    def dr_fails(self) -> bool:
        return self._hit(self.config.dr_fail_rate)
