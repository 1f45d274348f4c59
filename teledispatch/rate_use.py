"""What an account's rate limits are using right now, read from the worker's departure log.

The departure gate (``worker/ratelimit/lua/depart.lua``) keeps, per account with a
per-second limit, a sorted set of the requests that left or are leaving, scored by time in
microseconds, each member starting ``"<us>:<messages>:"``. The API and the console only read
it (one ``ZRANGEBYSCORE`` over the last window), so the key's layout is repeated here, in the
kernel, as ``circuits.py`` does for the circuit's key; the worker owns and writes it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import redis

#: ``worker/ratelimit/limiter.py``'s default key prefix and ``keys.py``'s departures key.
KEY_PREFIX = "td:rl"
WINDOW_US = 1_000_000


def departures_key(account: str) -> str:
    return f"{KEY_PREFIX}:{{{account}}}:departures"


@dataclass(frozen=True, slots=True)
class RateUse:
    """Requests and messages that left in the last second (pending ones count as now)."""

    requests: int
    messages: int


def rate_use(client: redis.Redis[Any], account: str) -> RateUse:
    seconds, micros = client.time()
    now_us = int(seconds) * 1_000_000 + int(micros)
    members: list[bytes] = client.zrangebyscore(departures_key(account), now_us - WINDOW_US, "+inf")
    messages = 0
    for member in members:
        parts = member.split(b":", 2)
        if len(parts) >= 2 and parts[1].isdigit():
            messages += int(parts[1])
    return RateUse(len(members), messages)


__all__ = ["KEY_PREFIX", "RateUse", "departures_key", "rate_use"]
