"""When will the rest of a job be sent? A pure estimate from the account's budget.

It mirrors the limiter's arithmetic (``worker/lua/reserve.lua``): a rate of ``r`` per second is
enforced as ``floor(r)`` per ``1 + jitter_s`` seconds, and an hour/day cap lets through at most
its count per window. Lookups show it as an ETA; it ignores other jobs sharing the account
(pass a lower ``throttle_factor`` or the window usage to account for them).
"""

from __future__ import annotations

import math

from teledispatch.config import AccountConfig


def _per_second(rate: float | None, jitter_s: float, factor: float) -> float | None:
    if rate is None:
        return None
    r = rate * factor
    if r >= 1:
        return math.floor(r + 1e-9) / (1 + jitter_s)
    return 1 / (1 / r + jitter_s)


def messages_per_second(
    account: AccountConfig, *, jitter_s: float = 0.02, throttle_factor: float = 1.0
) -> float | None:
    """Sustained messages per second the limiter allows; None when nothing limits it."""
    rates = [
        r
        for r in (
            _per_second(account.max_messages_per_second, jitter_s, throttle_factor),
            None
            if account.max_requests_per_second is None
            else (_per_second(account.max_requests_per_second, jitter_s, throttle_factor) or 0)
            * account.batch_size,
        )
        if r is not None
    ]
    return min(rates) if rates else None


def _window_seconds(
    remaining: int, limit: int | None, window_s: float, used: int, jitter_s: float, rate: float
) -> float:
    """Time until the last of ``remaining`` fits under a sliding ``limit`` per ``window_s``."""
    if limit is None:
        return 0.0
    room = max(0, limit - used)
    if remaining <= room:
        return 0.0
    extra = remaining - room
    windows = math.ceil(extra / limit)
    last_chunk = extra - (windows - 1) * limit
    return windows * (window_s + jitter_s) + (last_chunk / rate if rate else 0.0)


def estimate_finish(
    account: AccountConfig,
    remaining: int,
    now: float,
    *,
    sent_last_hour: int = 0,
    sent_last_day: int = 0,
    jitter_s: float = 0.02,
    throttle_factor: float = 1.0,
) -> float:
    """Epoch seconds at which ``remaining`` more messages will have been sent, at best.

    ``sent_last_hour`` / ``sent_last_day`` are what the account already used in those sliding
    windows. Per-recipient caps are not modelled: a job to one number may take longer.
    """
    if remaining <= 0:
        return now
    rate = messages_per_second(account, jitter_s=jitter_s, throttle_factor=throttle_factor)
    by_rate = remaining / rate if rate else 0.0
    per_rate = rate or 0.0
    by_hour = _window_seconds(
        remaining, account.max_messages_per_hour, 3600.0, sent_last_hour, jitter_s, per_rate
    )
    by_day = _window_seconds(
        remaining, account.max_messages_per_day, 86400.0, sent_last_day, jitter_s, per_rate
    )
    return now + max(by_rate, by_hour, by_day)
