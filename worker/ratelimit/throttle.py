"""The provider said "too fast": slow every worker of the account down (AIMD, in Redis).

A report multiplies the account's request and message rates by ``decrease`` (at most once per
``cooldown_s``, since every request in flight fails together), never below ``floor``; the rate
then climbs back by ``recovery_per_s`` of the configured rate per second. Recovery is a function
of time only, so successful sends need no report and no extra round trip: ``reserve.lua``
applies the factor from the same (f0, t0) fields (``worker/ratelimit/lua/throttle.lua``).
"""

from __future__ import annotations

from typing import Any

import redis

from teledispatch.config import AccountConfig

from .keys import AccountKeys
from .scripts import US, Scripts, now_arg


class Throttle:
    """The account-wide factor applied to the configured rates (1.0 = full rate)."""

    def __init__(
        self,
        redis_client: redis.Redis[Any],
        scripts: Scripts,
        *,
        key_prefix: str,
        decrease: float,
        floor: float,
        recovery_per_s: float,
        cooldown_s: float,
    ) -> None:
        if not 0 < floor <= decrease < 1 or recovery_per_s < 0:
            raise ValueError("need 0 < throttle_floor <= throttle_decrease < 1, recovery >= 0")
        self._redis = redis_client
        self._scripts = scripts
        self._key_prefix = key_prefix
        self._decrease = decrease
        self._floor = floor
        self._recovery_per_s = recovery_per_s
        self._cooldown_s = cooldown_s

    def report(
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
            keys=[AccountKeys.of(self._key_prefix, account.name).state],
            args=[
                now_arg(now_ms),
                repr(self._decrease),
                repr(self._floor),
                repr(self._recovery_per_s),
                str(round(self._cooldown_s * US)),
                str(round((retry_after_s or 0.0) * US)),
            ],
            client=self._redis,
        )
        return int(raw) / US

    def factor(self, account: AccountConfig, *, now_us: float) -> float:
        """The factor applied to the account's rates at ``now_us`` (server clock)."""
        key = AccountKeys.of(self._key_prefix, account.name).state
        f0, t0 = self._redis.hmget(key, ["f0", "t0"])
        if f0 is None or t0 is None:
            return 1.0
        recovered = float(f0) + self._recovery_per_s * (now_us - float(t0)) / US
        return min(1.0, recovered)
