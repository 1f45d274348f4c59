"""Per-key request rates, shared by every API process through Redis (``lua/key_rate.lua``).

One client with a busy loop must not starve the others of the API (or of the database behind
it): each key gets ``rate_per_s`` requests per second with bursts of ``burst``, from its own
``[api] keys`` entry or the ``[api]`` defaults. A refused request is a 429 whose
``Retry-After`` says when the next one would be admitted.

When Redis cannot be reached the request is admitted: the limiter protects the API from a
client, and an API that refused everyone while Redis restarts would be the bigger outage.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from importlib.resources import files
from typing import Any, Protocol

import redis
from redis.commands.core import Script

log = logging.getLogger("teledispatch.api")

US = 1_000_000
KEY_PREFIX = "td:api:rate:"


@dataclass(frozen=True, slots=True)
class Rate:
    #: Requests per second in the long run; 0: unlimited.
    per_s: float
    #: Requests admitted at once after a quiet spell.
    burst: int


class RateLimited(Exception):
    """Answered 429 by the app's handler."""

    def __init__(self, retry_after_s: float) -> None:
        super().__init__(f"retry after {retry_after_s:.3f}s")
        self.retry_after_s = retry_after_s

    @property
    def header(self) -> str:
        """``Retry-After``: whole seconds, at least 1 (the header takes no fractions)."""
        return str(max(1, math.ceil(self.retry_after_s)))


class Limiter(Protocol):
    def admit(self, key_name: str, rate: Rate, *, now_s: float | None = None) -> float:
        """0.0 when the request may go on, else the seconds until it would be admitted."""
        ...


def _script_text() -> str:
    return files("teledispatch.api").joinpath("lua", "key_rate.lua").read_text(encoding="utf-8")


class RedisLimiter:
    """The GCRA of ``key_rate.lua``; ``now_s`` (tests) replaces the Redis server's clock."""

    def __init__(self, client: redis.Redis[Any]) -> None:
        self._redis = client
        self._script: Script = client.register_script(_script_text())
        self._down = False

    @classmethod
    def from_url(cls, url: str) -> RedisLimiter:
        return cls(redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1))

    def admit(self, key_name: str, rate: Rate, *, now_s: float | None = None) -> float:
        if rate.per_s <= 0:
            return 0.0
        now = "" if now_s is None else str(round(now_s * US))
        interval = str(max(1, round(US / rate.per_s)))
        try:
            admitted, retry_us = self._script(
                keys=[KEY_PREFIX + key_name],
                args=[now, interval, str(max(1, rate.burst))],
                client=self._redis,
            )
        except redis.RedisError as exc:
            if not self._down:  # once per outage, not once per request
                log.warning("request rate limits off: Redis unreachable (%s)", exc)
            self._down = True
            return 0.0
        self._down = False
        return 0.0 if int(admitted) else int(retry_us) / US


class Unlimited:
    """No limit (an app embedded in a test or a process that has no Redis)."""

    def admit(self, key_name: str, rate: Rate, *, now_s: float | None = None) -> float:
        return 0.0
