"""Fault injection and the limits a real provider enforces (TPS, per-recipient caps).

All randomness comes from one seeded generator so a run with ``--seed`` is reproducible as long
as requests arrive in the same order.
"""

from __future__ import annotations

import random
import re
from bisect import bisect_left, bisect_right, insort
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

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


#: The send channels; each may carry its own faults (``--fail-rate nxcloud.sms=1``).
CHANNELS: tuple[str, ...] = ("nxcloud.sms", "uspeedo.sms", "volc.vms.append", "volc.axn.bind")
USPEEDO_SHAPES: tuple[str, ...] = ("basic", "sdk")
_RATES = (
    "fail_rate",
    "internal_error_rate",
    "item_fail_rate",
    "drop_response_rate",
    "dr_fail_rate",
    "timeout_rate",
    "nx_rate_limit_rate",
)


@dataclass(frozen=True, slots=True)
class FaultConfig:
    fail_rate: float = 0.0
    #: The HTTP status ``fail_rate`` answers with (503 by default: "the provider is unwell").
    fail_status: int = 503
    internal_error_rate: float = 0.0
    item_fail_rate: float = 0.0
    drop_response_rate: float = 0.0
    latency_ms: float = 0.0
    #: Share of requests held ``timeout_ms`` unprocessed, then closed unanswered: a hung provider.
    timeout_rate: float = 0.0
    timeout_ms: float = 30_000.0
    tps: int | None = None
    recipient_cap: RecipientCap | None = None
    dr_delay_ms: float = 1000.0
    dr_fail_rate: float = 0.0
    #: Share of NXCloud requests refused whole with code 13007 (per-number rate limit).
    nx_rate_limit_rate: float = 0.0
    #: NXCloud item ``message`` as the real API writes it, without our ``(NNNN)`` code suffix.
    nxcloud_plain_items: bool = False
    #: USpeedo answer shape: ``basic`` (``FailedTargetPhones``) or ``sdk`` (``FailContent``).
    uspeedo_shape: str = "basic"
    #: ``RetCode`` of an ``sdk``-shape answer in which some numbers failed: the older gateway
    #: documents ``FailContent`` as meaningful when ``RetCode`` is non-zero, so a partial
    #: success may come with one (0 by default: the SDK shape as first seen).
    uspeedo_partial_retcode: int = 0
    #: Country prefixes NXCloud does not reach (``"44,1"``): their items fail with 13005, the
    #: refusal a route moves a message on to another provider for.
    unsupported_prefixes: str = ""
    seed: int | None = None

    def __post_init__(self) -> None:
        for name in _RATES:
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, not {value}")
        if self.fail_rate + self.internal_error_rate > 1.0:
            raise ValueError("fail_rate + internal_error_rate must not exceed 1")
        if min(self.latency_ms, self.dr_delay_ms, self.timeout_ms) < 0:
            raise ValueError("latency_ms, timeout_ms and dr_delay_ms must not be negative")
        if self.tps is not None and self.tps <= 0:
            raise ValueError("tps must be positive")
        if not 400 <= self.fail_status <= 599:
            raise ValueError(
                f"fail_status must be an HTTP error status (400-599), not {self.fail_status}"
            )
        if self.uspeedo_partial_retcode < 0:
            raise ValueError("uspeedo_partial_retcode must not be negative")
        if self.uspeedo_shape not in USPEEDO_SHAPES:
            raise ValueError(f"uspeedo_shape must be one of {', '.join(USPEEDO_SHAPES)}")


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
    """Decisions about one request or item; the only owner of the random generator.

    Faults are global with per-channel overrides, and both may change while the simulator
    runs (``POST /_sim/faults``). A channel whose ``tps`` or ``recipient_cap`` changes starts
    that limit's counting afresh.
    """

    def __init__(
        self, config: FaultConfig, overrides: Mapping[str, Mapping[str, Any]] | None = None
    ) -> None:
        self._initial = (config, {ch: dict(o) for ch, o in (overrides or {}).items()})
        self.reset()

    @property
    def config(self) -> FaultConfig:
        """The global faults (a channel's own overrides apply on top)."""
        return self._base

    def reset(self) -> None:
        """Back to the faults, counters and random sequence the process started with."""
        base, overrides = self._initial
        self._base = base
        self._overrides = {ch: dict(o) for ch, o in overrides.items()}
        self._configs = {ch: self._build(ch) for ch in CHANNELS}
        self._windows: dict[str, tuple[SlidingWindow | None, SlidingWindow | None]] = {}
        self.rng = random.Random(base.seed)

    def _build(self, channel: str) -> FaultConfig:
        return replace(self._base, **self._overrides.get(channel, {}))

    def for_channel(self, channel: str) -> FaultConfig:
        """The faults in force on ``channel``; other channels (status queries) get the global."""
        return self._configs.get(channel, self._base)

    def update(
        self, changes: Mapping[str, Any], channel: str | None = None, *, clear: bool = False
    ) -> None:
        """Apply ``changes`` globally or to one channel; nothing changes if any is invalid.

        ``clear`` first drops the overrides of ``channel`` (or of every channel)."""
        if "seed" in changes:
            raise ValueError("seed cannot be changed while running")
        unknown = set(changes) - {f.name for f in fields(FaultConfig)}
        if unknown:
            raise ValueError(f"unknown fault option(s): {', '.join(sorted(unknown))}")
        if channel is not None and channel not in CHANNELS:
            raise ValueError(f"unknown channel {channel!r}; one of {', '.join(CHANNELS)}")
        base = self._base
        overrides = {ch: dict(o) for ch, o in self._overrides.items()}
        if clear:
            if channel is None:
                overrides.clear()
            else:
                overrides.pop(channel, None)
        if channel is None:
            base = replace(base, **changes)  # validates
        else:
            overrides.setdefault(channel, {}).update(changes)
        configs = {ch: replace(base, **overrides.get(ch, {})) for ch in CHANNELS}
        for ch in CHANNELS:
            old, new = self._configs[ch], configs[ch]
            if (old.tps, old.recipient_cap) != (new.tps, new.recipient_cap):
                self._windows.pop(ch, None)
        self._base, self._overrides, self._configs = base, overrides, configs

    def snapshot(self) -> dict[str, Any]:
        """What ``GET /_sim/faults`` shows: global, per-channel in force, and the overrides."""
        return {
            "global": _as_json(self._base),
            "channels": {ch: _as_json(self._configs[ch]) for ch in CHANNELS},
            "overrides": {ch: _as_json_fields(o) for ch, o in self._overrides.items() if o},
        }

    def _limits(self, channel: str) -> tuple[SlidingWindow | None, SlidingWindow | None]:
        limits = self._windows.get(channel)
        if limits is None:
            cfg = self.for_channel(channel)
            cap = cfg.recipient_cap
            limits = (
                SlidingWindow(cfg.tps, 1.0) if cfg.tps else None,
                SlidingWindow(cap.count, cap.window_s) if cap else None,
            )
            self._windows[channel] = limits
        return limits

    def _hit(self, rate: float) -> bool:
        return rate > 0.0 and self.rng.random() < rate

    def server_error(self, channel: str) -> int | None:
        """``fail_status`` (``--fail-rate``) or 500 (``--internal-error-rate``) for the request."""
        cfg = self.for_channel(channel)
        if cfg.fail_rate <= 0.0 and cfg.internal_error_rate <= 0.0:
            return None
        draw = self.rng.random()
        if draw < cfg.fail_rate:
            return cfg.fail_status
        if draw < cfg.fail_rate + cfg.internal_error_rate:
            return 500
        return None

    def times_out(self, channel: str) -> bool:
        return self._hit(self.for_channel(channel).timeout_rate)

    def nx_rate_limited(self) -> bool:
        return self._hit(self.for_channel("nxcloud.sms").nx_rate_limit_rate)

    def throttled(self, channel: str, account: str, now: float) -> bool:
        tps = self._limits(channel)[0]
        return tps is not None and not tps.admit(account, now)

    def item_fails(self, channel: str) -> bool:
        return self._hit(self.for_channel(channel).item_fail_rate)

    def recipient_refused(self, channel: str, phone: str, now: float) -> bool:
        """Admit (and count) one message to ``phone``, or refuse it as over the cap."""
        recipients = self._limits(channel)[1]
        if recipients is None:
            return False
        return not recipients.admit(phone.lstrip("+"), now)

    def unsupported(self, channel: str, phone: str) -> bool:
        """Whether ``phone`` is in a country the channel does not reach."""
        prefixes = self.for_channel(channel).unsupported_prefixes
        digits = phone.lstrip("+")
        return any(digits.startswith(p) for p in prefixes.split(",") if p)

    def drop_response(self, channel: str) -> bool:
        return self._hit(self.for_channel(channel).drop_response_rate)

    def dr_fails(self, channel: str) -> bool:
        return self._hit(self.for_channel(channel).dr_fail_rate)


def _json_value(value: Any) -> Any:
    return str(value) if isinstance(value, RecipientCap) else value


def _as_json_fields(values: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _json_value(v) for k, v in values.items()}


def _as_json(config: FaultConfig) -> dict[str, Any]:
    return {f.name: _json_value(getattr(config, f.name)) for f in fields(config)}
