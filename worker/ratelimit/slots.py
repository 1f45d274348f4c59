"""Concurrency slots: at most ``concurrency`` requests of an account in flight across every
worker, as leases in Redis (``worker/ratelimit/lua/slot_acquire.lua``, ``slot_release.lua``)."""

from __future__ import annotations

import secrets
import time
from typing import Any

import redis

from teledispatch.config import AccountConfig

from .keys import AccountKeys
from .scripts import US, Scripts, now_arg

#: Token returned by :meth:`ConcurrencySlots.acquire` for accounts without a concurrency limit.
UNLIMITED = "unlimited"

#: How long "a dispatch waits for a slot" is remembered (its fallback wake-up comes sooner).
WANT_TTL_MS = 5_000


class ConcurrencySlots:
    def __init__(
        self, redis_client: redis.Redis[Any], scripts: Scripts, *, key_prefix: str
    ) -> None:
        self._redis = redis_client
        self._scripts = scripts
        self._key_prefix = key_prefix

    def acquire(
        self,
        account: AccountConfig,
        *,
        lease_s: float,
        timeout_s: float = 0.0,
        token: str | None = None,
        now_ms: float | None = None,
    ) -> str | None:
        """Take one of the account's ``concurrency`` in-flight slots; None after ``timeout_s``.

        The slot frees itself ``lease_s`` after acquiring (a crashed worker loses nothing
        for longer); pass the same ``token`` again to renew a long request's lease. Waiting
        blocks on a wake list that ``release`` pushes to, bounded by the soonest lease
        expiry, so waiters neither poll nor sleep past a free slot by more than a round trip.
        """
        if account.concurrency is None:
            return UNLIMITED
        k = AccountKeys.of(self._key_prefix, account.name)
        token = token or secrets.token_hex(8)
        args = [now_arg(now_ms), str(account.concurrency), str(round(lease_s * US)), token]
        deadline = time.monotonic() + timeout_s
        while True:
            raw: Any = self._scripts.slot_acquire(keys=[k.slots], args=args, client=self._redis)
            if int(raw[0]) == 1:
                return token
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            # BLPOP's timeout 0 means "forever": keep it positive and bounded.
            self._redis.blpop([k.slots_wake], timeout=max(0.01, min(remaining, raw[1] / US)))

    def free(self, account: AccountConfig) -> bool:
        """Whether a slot looks free now (read-only, on this machine's clock; acquiring
        decides). Asked before claiming, so a full account's rows are not claimed for nothing."""
        if account.concurrency is None:
            return True
        key = AccountKeys.of(self._key_prefix, account.name).slots
        live = int(self._redis.zcount(key, f"({round(time.time() * US)}", "+inf"))
        return live < account.concurrency

    def want(self, account: AccountConfig) -> None:
        """A dispatch found every slot taken: the next release should wake the account."""
        key = f"{AccountKeys.of(self._key_prefix, account.name).slots_wake}:want"
        self._redis.set(key, b"1", px=WANT_TTL_MS)

    def take_want(self, account: AccountConfig) -> bool:
        """Whether a dispatch is waiting for a slot (and forget it: one wake-up is enough)."""
        key = f"{AccountKeys.of(self._key_prefix, account.name).slots_wake}:want"
        return int(self._redis.delete(key)) == 1

    def release(self, account: AccountConfig, token: str) -> bool:
        """Give the slot back; False if its lease had already run out."""
        if token == UNLIMITED or account.concurrency is None:
            return True
        k = AccountKeys.of(self._key_prefix, account.name)
        raw: Any = self._scripts.slot_release(
            keys=[k.slots, k.slots_wake],
            args=[token, str(account.concurrency)],
            client=self._redis,
        )
        return int(raw) == 1
