"""The suppression lists as an app, the CLI and the API use them.

A list belongs to one account, or (``account=None``) is the global list every account obeys.
Numbers are checked and stored in E.164 (as messages store them) before anything is written:
one bad number refuses the whole call, naming every problem (:class:`ValidationFailed`).
A number put on a list suppresses the recipient's messages not yet sent: those enqueued later
become ``suppressed`` at enqueue, those already waiting when they are claimed.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

from teledispatch.config import Settings, settings
from teledispatch.db import optouts as optouts_db
from teledispatch.db.engine import get_engine
from teledispatch.db.migrate import ensure_schema
from teledispatch.validation import E164_RULE, Problem, ValidationFailed, normalize_phone

#: Shown for the global list wherever an account name would be.
GLOBAL_NAME = "global"


@dataclass(frozen=True, slots=True)
class OptOutEntry:
    phone: str
    created_at: float


def _list_key(cfg: Settings, account: str | None) -> str:
    """The stored ``account`` of a list; an unknown account raises ``ConfigError``."""
    if account is None:
        return optouts_db.GLOBAL_OPTOUT
    cfg.account(account)
    return account


def normalize(phones: Iterable[object]) -> list[str]:
    """E.164 of every number; :class:`ValidationFailed` naming each one that is not."""
    out: list[str] = []
    problems: list[Problem] = []
    for index, phone in enumerate(phones):
        normal = normalize_phone(phone)
        if normal is None:
            problems.append(Problem(None, f"phones[{index}]", str(phone)[:24], E164_RULE))
        else:
            out.append(normal)
    if problems:
        raise ValidationFailed(problems)
    if not out:
        raise ValidationFailed([Problem(None, "phones", "", "at least one phone number")])
    return out


def add(
    phones: Iterable[object], account: str | None = None, *, cfg: Settings | None = None
) -> int:
    """Opt ``phones`` out of ``account`` (None: of every account); returns how many were new."""
    cfg = cfg or settings()
    key, numbers = _list_key(cfg, account), normalize(phones)
    ensure_schema(cfg.database_url)
    with get_engine(cfg.database_url).begin() as conn:
        return optouts_db.add(conn, key, numbers, time.time())


def remove(
    phones: Iterable[object], account: str | None = None, *, cfg: Settings | None = None
) -> int:
    """Take ``phones`` off the list; returns how many were on it."""
    cfg = cfg or settings()
    key, numbers = _list_key(cfg, account), normalize(phones)
    ensure_schema(cfg.database_url)
    with get_engine(cfg.database_url).begin() as conn:
        return optouts_db.remove(conn, key, numbers)


def entries(
    account: str | None = None,
    *,
    after: str = "",
    limit: int = 1000,
    cfg: Settings | None = None,
) -> list[OptOutEntry]:
    """One page of the list in phone order; pass the last phone as ``after`` for the next."""
    cfg = cfg or settings()
    key = _list_key(cfg, account)
    ensure_schema(cfg.database_url)
    with get_engine(cfg.database_url).connect() as conn:
        rows = optouts_db.page(conn, key, after, limit)
    return [OptOutEntry(row[0], row[1]) for row in rows]


def is_suppressed(phone: str, account: str, *, cfg: Settings | None = None) -> bool:
    """Whether a message of ``account`` to ``phone`` would be suppressed."""
    cfg = cfg or settings()
    (number,) = normalize([phone])
    ensure_schema(cfg.database_url)
    with get_engine(cfg.database_url).connect() as conn:
        return bool(optouts_db.suppressed_among(conn, account, [number]))
