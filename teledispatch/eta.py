"""When a job will finish: its remaining messages served at its share of its account's rate.

Pure, with the clock passed in. The account's rate comes from its configured limits (the
slowest of messages/s and requests/s × batch size); it is shared the way claims share it
(``teledispatch.scheduling``): a lane takes the whole rate while it has rows due, the lane
after it only what is left, and within a lane each job gets a part proportional to its
weight. So the estimate plays the account's backlog forward as a fluid: at each moment every
job with rows due is served at its share, and the shares change when a job finishes or a
job's rows become due (a ``not_before``, a retry). Hour and day caps then push the finish to
the window in which the account's messages up to it fit.

What it does not foresee: jobs enqueued later, retries and deferrals not yet happened, a
circuit opening, throttling by the provider, quiet hours. An account without a rate or
message limit has no estimate (None): its pace is the provider's and the workers'.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

#: Below this many messages a job counts as finished in the fluid (floating-point dust).
_EPS = 1e-6


@dataclass(frozen=True, slots=True)
class Load:
    """One job's work on its account, as the estimate sees it."""

    job_id: str
    #: 0 high, 1 normal, 2 low.
    lane: int
    weight: float
    #: Messages not yet final (waiting or in flight).
    remaining: int
    #: When its rows are due (its earliest due time); at or before ``now``: due now.
    ready_at: float


@dataclass(frozen=True, slots=True)
class Limits:
    """The account limits that set its sustained pace."""

    messages_per_second: float | None = None
    requests_per_second: float | None = None
    batch_size: int = 1
    messages_per_hour: int | None = None
    messages_per_day: int | None = None

    @property
    def rate(self) -> float | None:
        """Messages per second the account can send at most; None: nothing limits it."""
        rates = []
        if self.messages_per_second:
            rates.append(float(self.messages_per_second))
        if self.requests_per_second:
            rates.append(float(self.requests_per_second) * max(1, self.batch_size))
        return min(rates) if rates else None


def finish_times(
    loads: Sequence[Load], rate: float, now: float, until: str | None = None
) -> dict[str, float]:
    """Each job's finish when the account sends ``rate`` messages/s shared by lane and
    weight; stops once ``until`` (a job id) has finished."""
    return _play(loads, rate, now, until)[0]


def _play(
    loads: Sequence[Load], rate: float, now: float, until: str | None
) -> tuple[dict[str, float], float]:
    """:func:`finish_times`, and how many messages the account sent until it stopped."""
    left = {ld.job_id: float(ld.remaining) for ld in loads if ld.remaining > 0}
    start = sum(left.values())
    by_id = {ld.job_id: ld for ld in loads}
    done: dict[str, float] = {ld.job_id: now for ld in loads if ld.remaining <= 0}
    t = now
    while left and (until is None or until not in done):
        active = [by_id[j] for j in left if by_id[j].ready_at <= t]
        later = min((by_id[j].ready_at for j in left if by_id[j].ready_at > t), default=math.inf)
        if not active:
            t = later
            continue
        lane = min(ld.lane for ld in active)
        serving = [ld for ld in active if ld.lane == lane]
        total_w = sum(ld.weight for ld in serving)
        speed = {ld.job_id: rate * ld.weight / total_w for ld in serving}
        step = min(min(left[j] / s for j, s in speed.items()), later - t)
        t += step
        for j, s in speed.items():
            left[j] -= s * step
            if left[j] <= _EPS:
                done[j] = t
                del left[j]
    return done, start - sum(left.values())


def _window_wait(n: float, cap: int | None, window_s: float) -> float:
    """Whole windows ``n`` messages must wait under ``cap`` per window (the last one open)."""
    return 0.0 if cap is None or n <= 0 else ((math.ceil(n) - 1) // cap) * window_s


def estimate(job_id: str, loads: Sequence[Load], limits: Limits, now: float) -> float | None:
    """When ``job_id`` (one of ``loads``, which lists every job of its account with work left)
    will have sent its last message; None when the account sets no rate to estimate from."""
    rate = limits.rate
    mine = next((ld for ld in loads if ld.job_id == job_id), None)
    if mine is None or mine.remaining <= 0:
        return now
    if rate is None:
        if not (limits.messages_per_hour or limits.messages_per_day):
            return None
        # Only windows bind: what is before it (its lane and the ones served first) goes at
        # once, up to the caps.
        finish = max(now, mine.ready_at)
        sent = float(sum(ld.remaining for ld in loads if ld.lane <= mine.lane))
    else:
        done, sent = _play(loads, rate, now, until=job_id)
        finish = done[job_id]
    waits = (
        _window_wait(sent, limits.messages_per_hour, 3600.0),
        _window_wait(sent, limits.messages_per_day, 86400.0),
    )
    return max(finish, now + max(waits))
