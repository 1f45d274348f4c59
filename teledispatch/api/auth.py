"""API keys: stored hashed, compared in constant time, configured in two places.

Keys live *hashed* (``sha256:<hex>``) in the config file's ``[api] keys`` and/or
``TELEDISPATCH_API_KEYS``: the config can then be read by anyone who deploys it without
handing out a usable key. Presented keys are hashed and compared with
:func:`hmac.compare_digest` against every configured digest, so the time taken says nothing
about which key (or which prefix) matched. With no key configured every request is refused:
an API that enqueues paid messages fails closed.

No FastAPI here: ``teledispatch api hash-key`` needs only this module.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from teledispatch.config import ConfigError, Settings, settings

API_KEYS_ENV = "TELEDISPATCH_API_KEYS"
HASH_PREFIX = "sha256:"
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


def hash_key(key: str) -> str:
    """The form to put in ``[api] keys``: only the digest is ever stored."""
    return HASH_PREFIX + hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True)
class ApiKey:
    """A configured key: its name (for logs, never the key), digest and scope."""

    name: str
    digest: bytes
    #: The accounts it may enqueue on, read and cancel jobs of; None: every account.
    accounts: frozenset[str] | None = None
    #: Named keys (``{name = …}`` entries) keep their own idempotency keys; the bare digests
    #: of earlier releases share one space, as they always did.
    own_idempotency: bool = False
    #: Its requests per second and burst; None: ``[api] rate_per_s`` / ``burst``.
    rate_per_s: float | None = None
    burst: int | None = None
    #: The routes it may enqueue on (and read and cancel jobs of); None: every route if its
    #: scope covers every account, else none.
    routes: frozenset[str] | None = None

    def may_use(self, account: str) -> bool:
        return self.accounts is None or account in self.accounts

    def may_use_route(self, route: str) -> bool:
        if self.routes is None:
            return self.accounts is None
        return route in self.routes

    def may_see(self, account: str, route: str | None) -> bool:
        """A job's reader: its route's, when it named one, else its account's."""
        return self.may_use_route(route) if route else self.may_use(account)

    def idempotency_key(self, key: str | None) -> str | None:
        """``key`` as stored: prefixed with this key's name, so two clients that pick the same
        key never see each other's job (hashed when the prefix would pass the column)."""
        if key is None or not self.own_idempotency:
            return key
        scoped = f"{self.name}:{key}"
        return (
            scoped
            if len(scoped) <= 200
            else f"{self.name}:{hashlib.sha256(key.encode()).hexdigest()}"
        )


_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


def _digest(value: Any) -> bytes | None:
    text = value.strip().lower() if isinstance(value, str) else ""
    hexpart = text.removeprefix(HASH_PREFIX)
    if not text.startswith(HASH_PREFIX) or not _HEX64.match(hexpart):
        return None
    return bytes.fromhex(hexpart)


_FIELDS = ("name", "hash", "accounts", "routes", "rate_per_s", "burst")


def _limits(entry: dict[str, Any]) -> str | None:
    """What is wrong with the entry's own rate limit, if anything."""
    rate, burst = entry.get("rate_per_s"), entry.get("burst")
    if rate is not None and (isinstance(rate, bool) or not isinstance(rate, int | float)):
        return "rate_per_s must be a number >= 0 (0: unlimited)"
    if rate is not None and rate < 0:
        return "rate_per_s must be a number >= 0 (0: unlimited)"
    if burst is not None and (isinstance(burst, bool) or not isinstance(burst, int) or burst < 1):
        return "burst must be a positive whole number"
    return None


def _named(entry: dict[str, Any], where: str, problems: list[str]) -> ApiKey | None:
    name, digest, accounts = entry.get("name"), _digest(entry.get("hash")), entry.get("accounts")
    routes = entry.get("routes")
    if set(entry) - set(_FIELDS):
        problems.append(f"{where}: only {', '.join(_FIELDS)} are allowed")
    elif not isinstance(name, str) or not _NAME.match(name):
        problems.append(f"{where}: name must be 1-64 letters, digits, '.', '_' or '-'")
    elif digest is None:
        problems.append(f"{where}: hash is not 'sha256:<64 hex digits>'")
    elif accounts is not None and not (
        isinstance(accounts, list) and all(isinstance(a, str) for a in accounts)
    ):
        problems.append(f"{where}: accounts must be a list of account names")
    elif routes is not None and not (
        isinstance(routes, list) and all(isinstance(r, str) for r in routes)
    ):
        problems.append(f"{where}: routes must be a list of route names")
    elif (limits := _limits(entry)) is not None:
        problems.append(f"{where}: {limits}")
    else:
        scope = None if accounts is None else frozenset(accounts)
        rate = entry.get("rate_per_s")
        return ApiKey(
            name,
            digest,
            scope,
            own_idempotency=True,
            rate_per_s=None if rate is None else float(rate),
            burst=entry.get("burst"),
            routes=None if routes is None else frozenset(routes),
        )
    return None


def parse_keys(entries: Iterable[Any], source: str) -> list[ApiKey]:
    """Keys from ``sha256:<hex>`` strings or ``{name, hash, accounts}`` tables; a bad entry
    is named by position, never echoed (an operator who pasted a raw key by mistake must not
    find it in the log)."""
    keys: list[ApiKey] = []
    problems: list[str] = []
    for i, entry in enumerate(entries):
        where = f"{source} entry {i + 1}"
        if isinstance(entry, dict):
            key = _named(entry, where, problems)
            keys += [key] if key else []
            continue
        digest = _digest(entry)
        if digest is None:
            problems.append(
                f"{where} is not 'sha256:<64 hex digits>' "
                "(make one with `teledispatch api hash-key KEY`)"
            )
            continue
        keys.append(ApiKey(f"{'env' if source == API_KEYS_ENV else 'config'}#{i + 1}", digest))
    if problems:
        raise ConfigError("; ".join(problems))
    return keys


def parse_hashed_keys(entries: Iterable[Any], source: str) -> list[bytes]:
    """The digests of :func:`parse_keys`."""
    return [k.digest for k in parse_keys(entries, source)]


def load_keys(cfg: Settings | None = None) -> list[ApiKey]:
    """Keys from the config file's ``[api] keys`` (as read into ``cfg``, default: the
    process settings) plus ``TELEDISPATCH_API_KEYS``."""
    cfg = cfg or settings()
    if not isinstance(cfg.api_keys, list | tuple):
        raise ConfigError(f"{cfg.source}: [api] keys must be a list of 'sha256:<hex>' strings")
    keys = parse_keys(cfg.api_keys, f"{cfg.source} [api] keys")
    env = os.environ.get(API_KEYS_ENV, "")
    entries = [e for e in env.replace("\n", ",").split(",") if e.strip()]
    keys += parse_keys(entries, API_KEYS_ENV)
    return keys


def load_api_keys(cfg: Settings | None = None) -> list[bytes]:
    """The digests of :func:`load_keys`."""
    return [k.digest for k in load_keys(cfg)]


class KeyRing:
    def __init__(self, keys: Sequence[bytes | ApiKey]) -> None:
        self._keys = tuple(
            k if isinstance(k, ApiKey) else ApiKey(f"key#{i + 1}", k) for i, k in enumerate(keys)
        )

    def __len__(self) -> int:
        return len(self._keys)

    def match(self, presented: str) -> ApiKey | None:
        digest = hashlib.sha256(presented.encode()).digest()
        found: ApiKey | None = None
        for key in self._keys:  # no early exit: every digest is compared every time
            if hmac.compare_digest(digest, key.digest):
                found = key
        return found

    def accepts(self, presented: str) -> bool:
        return self.match(presented) is not None
