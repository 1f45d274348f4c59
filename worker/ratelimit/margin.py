"""The adaptive margin: how much wider than its nominal length every window is enforced.

Why a margin at all: see ``limiter``. The departure gate counts each request at its measured
write time, so what is left for the margin to absorb is the spread, between requests, of the
time from the write to the provider's arrival stamp. That time is between 0 and the request's
round trip after the write (the answer cannot come before the request arrived), so the
longest recent write → answer time bounds the spread. Not a lower percentile: a saturated
account sends each request the moment its window allows, so any one request whose arrival
lags by more than the margin puts one request too many in a window at the provider (a p99
bound let one through on a loaded machine). A fixed margin costs its share of the rate on
every account; on a quiet machine next to its provider the bound is a few ms.

Since the departure gate moves each answered request back to its own answer's head
(``gate``), the margin only stands for requests whose answer has not come yet; the
reservations pace by :meth:`MarginEstimator.expected`, the usual write → answer time, which is
what a window costs once its request is answered.

This module is pure (no clock, no Redis): :class:`MarginEstimator` keeps the last
``window`` samples per account and answers ``clamp(p(percentile) × safety, floor, ceiling)``
(by default the largest sample).
Until it has ``min_samples`` of an account it answers the ceiling, the configured fixed
margin, so a fresh process is never less careful than before. The samples are every
process's (``answers``): the windows the margin widens hold every process's requests, and a
process's own share reached ``min_samples`` only after tens of seconds when many processes
shared an account. ``window`` is the account's last 1,000 answers, about a minute of a
saturated 20-requests/s account: one slow answer keeps the margin wide that long.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

#: The defaults: the longest of the last 1,000 write → answer times, ×1.5, at least 3 ms
#: (timer and scheduling grain on a loaded machine), at most the configured margin.
PERCENTILE = 100.0
WINDOW = 1000
MIN_SAMPLES = 50
SAFETY = 1.5
FLOOR_S = 0.003
#: Added to an entry the gate places at its answer's head: the provider's clock grain and a
#: stamp taken while it answers, not only before. The reservations' pace adds it too.
ANSWER_FLOOR_S = 0.001
#: The reservations' pace: the median write → answer time (plus :data:`ANSWER_FLOOR_S`).
EXPECTED_PCT = 50.0


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile of ``values`` (not empty), ``0 < pct <= 100``."""
    if not values:
        raise ValueError("percentile of no values")
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


def margin_from(
    samples: Sequence[float],
    *,
    ceiling_s: float,
    floor_s: float = FLOOR_S,
    pct: float = PERCENTILE,
    safety: float = SAFETY,
    min_samples: int = MIN_SAMPLES,
) -> float:
    """The margin the samples justify (seconds), bounded to ``[floor_s, ceiling_s]``; the
    ceiling until there are ``min_samples``."""
    if len(samples) < min_samples:
        return ceiling_s
    floor = min(floor_s, ceiling_s)
    return min(ceiling_s, max(floor, percentile(samples, pct) * safety))


@dataclass
class MarginEstimator:
    """Per-account sliding samples of the write → answer time, and the margin they give."""

    ceiling_s: float
    floor_s: float = FLOOR_S
    pct: float = PERCENTILE
    window: int = WINDOW
    min_samples: int = MIN_SAMPLES
    safety: float = SAFETY
    _samples: dict[str, deque[float]] = field(default_factory=dict)
    _cached: dict[str, float] = field(default_factory=dict)
    _expected: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.ceiling_s < 0 or self.floor_s < 0 or not 0 < self.pct <= 100:
            raise ValueError("margins must be >= 0 and 0 < pct <= 100")
        if self.window < 1 or self.min_samples > self.window:
            raise ValueError("need window >= 1 and min_samples <= window")

    def observe(self, account: str, seconds: float) -> None:
        """One request's write → answer time (negative or NaN values are ignored)."""
        if not seconds >= 0:
            return
        samples = self._samples.get(account)
        if samples is None:
            samples = self._samples[account] = deque(maxlen=self.window)
        samples.append(seconds)
        self._cached.pop(account, None)
        self._expected.pop(account, None)

    def observe_all(self, account: str, values: Iterable[float]) -> None:
        for value in values:
            self.observe(account, value)

    def replace(self, account: str, values: Iterable[float]) -> None:
        """The account's samples are ``values`` (newest last) from now on, e.g. those every
        process measured (``answers``)."""
        self._samples.pop(account, None)
        self._cached.pop(account, None)
        self._expected.pop(account, None)
        self.observe_all(account, values)

    def expected(self, account: str) -> float:
        """What a window of ``account`` usually costs once its request is answered (seconds):
        the median sample plus :data:`ANSWER_FLOOR_S`, at most the ceiling (the ceiling until
        the first sample). Only a pace: the gate holds the limit whatever it says, so unlike
        :meth:`margin` it need not wait for ``min_samples``."""
        cached = self._expected.get(account)
        if cached is not None:
            return cached
        samples = self._samples.get(account, ())
        value = self.ceiling_s
        if samples:
            value = min(value, percentile(tuple(samples), EXPECTED_PCT) + ANSWER_FLOOR_S)
        self._expected[account] = value
        return value

    def margin(self, account: str) -> float:
        """The margin to enforce for ``account`` now (seconds)."""
        cached = self._cached.get(account)
        if cached is not None:
            return cached
        value = margin_from(
            tuple(self._samples.get(account, ())),
            ceiling_s=self.ceiling_s,
            floor_s=self.floor_s,
            pct=self.pct,
            safety=self.safety,
            min_samples=self.min_samples,
        )
        self._cached[account] = value
        return value
