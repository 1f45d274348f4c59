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
from typing import Any

from teledispatch.config import ConfigError, Settings, settings

API_KEYS_ENV = "TELEDISPATCH_API_KEYS"
HASH_PREFIX = "sha256:"
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


def hash_key(key: str) -> str:
    """The form to put in ``[api] keys``: only the digest is ever stored."""
    return HASH_PREFIX + hashlib.sha256(key.encode()).hexdigest()


def parse_hashed_keys(entries: Iterable[Any], source: str) -> list[bytes]:
    """Digests from ``sha256:<hex>`` entries; a bad entry is named by position, never echoed
    (an operator who pasted a raw key by mistake must not find it in the log)."""
    digests: list[bytes] = []
    problems: list[str] = []
    for i, entry in enumerate(entries):
        text = entry.strip().lower() if isinstance(entry, str) else ""
        hexpart = text.removeprefix(HASH_PREFIX)
        if not text.startswith(HASH_PREFIX) or not _HEX64.match(hexpart):
            problems.append(
                f"{source} entry {i + 1} is not 'sha256:<64 hex digits>' "
                "(make one with `teledispatch api hash-key KEY`)"
            )
            continue
        digests.append(bytes.fromhex(hexpart))
    if problems:
        raise ConfigError("; ".join(problems))
    return digests


def load_api_keys(cfg: Settings | None = None) -> list[bytes]:
    """Hashed keys from the config file's ``[api] keys`` (as read into ``cfg``, default: the
    process settings) plus ``TELEDISPATCH_API_KEYS``."""
    cfg = cfg or settings()
    if not isinstance(cfg.api_keys, list | tuple):
        raise ConfigError(f"{cfg.source}: [api] keys must be a list of 'sha256:<hex>' strings")
    digests = parse_hashed_keys(cfg.api_keys, f"{cfg.source} [api] keys")
    env = os.environ.get(API_KEYS_ENV, "")
    entries = [e for e in env.replace("\n", ",").split(",") if e.strip()]
    digests += parse_hashed_keys(entries, API_KEYS_ENV)
    return digests


class KeyRing:
    def __init__(self, digests: Sequence[bytes]) -> None:
        self._digests = tuple(digests)

    def __len__(self) -> int:
        return len(self._digests)

    def accepts(self, presented: str) -> bool:
        digest = hashlib.sha256(presented.encode()).digest()
        ok = False
        for known in self._digests:  # no early exit: every digest is compared every time
            ok |= hmac.compare_digest(digest, known)
        return ok
