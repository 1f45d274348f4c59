"""Per-recipient holds: the provider says a number hit its own cap, so keep it back.

The hold is written into the recipient's key that ``reserve.lua`` reads for the configured
per-recipient caps (``worker/ratelimit/lua/defer.lua``), so every worker defers the number.
"""

from __future__ import annotations

from typing import Any

import redis

from teledispatch.config import AccountConfig

from .keys import AccountKeys
from .scripts import US, Scripts, now_arg

#: NXCloud's documented cap, 5 per number per hour: the hold when no cap is configured.
DEFAULT_HOLD_S = 3600.0


class RecipientHolds:
    def __init__(
        self, redis_client: redis.Redis[Any], scripts: Scripts, *, key_prefix: str
    ) -> None:
        self._redis = redis_client
        self._scripts = scripts
        self._key_prefix = key_prefix

    def defer(
        self,
        account: AccountConfig,
        phone: str,
        seconds: float | None = None,
        *,
        now_ms: float | None = None,
    ) -> float:
        """The provider says this number hit its own cap (NXCloud 13007): hold it back.

        By default for the account's longest recipient window (one hour if none is
        configured: NXCloud's documented 5 per number per hour). Returns the epoch seconds
        (server clock) until which ``reserve`` defers the number.
        """
        if seconds is None:
            windows = [cap.window_s for cap in account.recipient_caps]
            seconds = max(windows, default=DEFAULT_HOLD_S)
        raw: Any = self._scripts.defer(
            keys=[AccountKeys.of(self._key_prefix, account.name).recipient(phone)],
            args=[now_arg(now_ms), str(round(seconds * US))],
            client=self._redis,
        )
        return int(raw) / 1000
