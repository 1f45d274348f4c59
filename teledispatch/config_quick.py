"""A quick check of the config file, without pydantic, for verbs that need no account model.

``teledispatch status`` and ``lookup`` use the database URL alone, yet must refuse a broken
config file exactly as every other verb does (the same ``error:`` line, exit 2). Building the
account models for that means importing pydantic on every call. :func:`database_url` instead
checks the file against rules *stricter* than the models': when they pass, the models would
accept the file too, and the URL is returned; anything else (a value of another type, a
missing ``ENV:`` variable, a typo'd table) returns None, and the caller loads the settings
the full way, which raises the one true error message. So the quick check can only ever
answer for a file the full loader accepts; it never words an error itself.

``tests/unit/test_config_quick.py`` keeps the field tables here in step with the models.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, get_args

from teledispatch.channels.ids import Channel
from teledispatch.config_file import (
    DEFAULT_DATABASE_URL,
    WINDOW,
    ConfigError,
    api_limits,
    config_path,
    max_body_bytes,
    parse_window,
    read_toml,
    resolve_env,
    unknown_tables,
)
from teledispatch.routes import parse_routes

Check = Callable[[Any], bool]


def _text(v: Any) -> bool:
    return type(v) is str


def _flag(v: Any) -> bool:
    return type(v) is bool


def _whole(low: int, high: float = math.inf) -> Check:
    return lambda v: type(v) is int and low <= v <= high


def _positive(v: Any) -> bool:
    # Finite: pydantic's float accepts inf, but nothing here needs to; stricter is safe.
    return type(v) in (int, float) and math.isfinite(v) and v > 0


def _optional(check: Check) -> Check:
    return lambda v: v is None or check(v)


def _one_of(*words: str) -> Check:
    return lambda v: type(v) is str and v in words


#: ``HH:MM-HH:MM``, as ``quiet_hours.Window.parse`` reads it (start and end checked apart).
_QUIET = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-3]):([0-5]\d)$")


def _quiet_hours(v: Any) -> bool:
    if v is None or (type(v) is str and not v.strip()):
        return True
    match = _QUIET.match(v) if type(v) is str else None
    if match is None:
        return False
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    return (h1, m1) != (h2, m2)


def _caps(v: Any) -> bool:
    """``[[count, "5m"], ...]``, the form the docs give; any other form takes the full path."""
    if type(v) is not list:
        return False
    for item in v:
        if type(item) is not list or len(item) != 2 or not _whole(1)(item[0]):
            return False
        window = item[1]
        if type(window) is str:
            if not WINDOW.match(window) or parse_window(window) <= 0:
                return False
        elif not _positive(window):
            return False
    return True


def _prices(v: Any) -> bool:
    if type(v) is not dict:
        return False
    for prefix, price in v.items():
        if prefix != "*" and not (prefix.isdigit() and len(prefix) <= 6):
            return False
        if type(price) not in (int, float) or not math.isfinite(price) or price < 0:
            return False
    return True


#: Every setting of ``config.AccountConfig`` but ``name`` (the table's), each with a test at
#: least as strict as the model's.
ACCOUNT_FIELDS: dict[str, Check] = {
    "channel": _one_of(*get_args(Channel)),
    "base_url": _text,
    "access_key": _text,
    "secret": _text,
    "app_key": _text,
    "region": _text,
    "service": _text,
    "max_batch": _whole(0),
    "max_attempts": _whole(1),
    "linger_ms": _whole(0),
    "timeout_s": _positive,
    "backoff_base_s": _positive,
    "backoff_max_s": _positive,
    "on_ambiguous": _one_of("reconcile", "resend", "fail"),
    "max_requests_per_second": _optional(_positive),
    "max_messages_per_second": _optional(_positive),
    "max_messages_per_hour": _optional(_whole(1)),
    "max_messages_per_day": _optional(_whole(1)),
    "recipient_caps": _caps,
    "concurrency": _optional(_whole(1)),
    "default_priority": _one_of("high", "normal", "low"),
    "default_ttl_s": _optional(_positive),
    "circuit_failures": _whole(0),
    "circuit_probe_min_s": _positive,
    "circuit_probe_max_s": _positive,
    "circuit_probe_size": _whole(1),
    "allow_any_number_type": _flag,
    "prices": _prices,
    "quiet_hours": _quiet_hours,
    "callback_token": _text,
    "callback_url": _text,
    "callback_secret": _text,
    "retention_days": _positive,
}
#: The account settings without a default: a table that leaves one out is refused.
ACCOUNT_REQUIRED = frozenset({"channel", "base_url"})

#: Every setting of ``config.WebhookSettings``, as :data:`ACCOUNT_FIELDS`.
WEBHOOK_FIELDS: dict[str, Check] = {
    "allow_http": _flag,
    "allow_private_networks": _flag,
    "retry_window_s": _positive,
    "backoff_base_s": _positive,
    "max_backoff_s": _positive,
    "batch_size": _whole(1, 1000),
    "timeout_s": _positive,
    "max_response_bytes": _whole(0),
}


@dataclass(frozen=True, slots=True)
class QuickAccount:
    """What ``send --dry-run`` reads of an account, built without the models from a table
    that passed the quick check: each field as ``config.AccountConfig`` holds it (the same
    defaults and the same normal forms; ``tests/unit/test_config_quick.py`` compares them)."""

    name: str
    channel: str
    max_batch: int = 0
    max_requests_per_second: float | None = None
    max_messages_per_second: float | None = None
    max_messages_per_hour: int | None = None
    max_messages_per_day: int | None = None
    default_priority: str = "normal"
    allow_any_number_type: bool = False
    prices: tuple[tuple[str, float], ...] = ()
    quiet_hours: str | None = None

    @property
    def batch_size(self) -> int:
        """As ``AccountConfig.batch_size``: the setting, never above the provider's limit."""
        from teledispatch.channels.registry import max_batch

        limit = max_batch(self.channel)
        return min(self.max_batch, limit) if self.max_batch else limit


def _as_float(value: Any) -> float | None:
    return None if value is None else float(value)


def _quick_account(name: str, table: dict[str, Any]) -> QuickAccount:
    """The view of a table :func:`_account_table` returned (values resolved and checked)."""
    quiet = table.get("quiet_hours")
    if quiet is not None:
        # Canonical, as the model's validator keeps it (the check above vouches it parses).
        from teledispatch.quiet_hours import validate

        quiet = validate(quiet)
    return QuickAccount(
        name=name,
        channel=table["channel"],
        max_batch=table.get("max_batch", 0),
        max_requests_per_second=_as_float(table.get("max_requests_per_second")),
        max_messages_per_second=_as_float(table.get("max_messages_per_second")),
        max_messages_per_hour=table.get("max_messages_per_hour"),
        max_messages_per_day=table.get("max_messages_per_day"),
        default_priority=table.get("default_priority", "normal"),
        allow_any_number_type=table.get("allow_any_number_type", False),
        prices=tuple(sorted((str(k), float(v)) for k, v in table.get("prices", {}).items())),
        quiet_hours=quiet,
    )


@dataclass(frozen=True, slots=True)
class QuickWebhooks:
    """The ``[webhooks]`` settings a callback URL is checked against (defaults as the model's)."""

    allow_http: bool = False
    allow_private_networks: bool = False


@dataclass(frozen=True)
class QuickConfig:
    """A config file the quick check vouched for, as ``send --dry-run`` reads it."""

    database_url: str
    #: Each account's settings, ``ENV:`` values resolved (viewed by :meth:`account`).
    tables: dict[str, dict[str, Any]] = field(default_factory=dict)
    webhooks: QuickWebhooks = field(default_factory=QuickWebhooks)

    def account(self, name: str) -> QuickAccount:
        # Only asked for an account it holds: for any other, the caller takes the full path.
        return _quick_account(name, self.tables[name])


def _account_table(table: Any) -> dict[str, Any] | None:
    """The account's settings, ``ENV:`` values resolved, when every one passes; else None."""
    if type(table) is not dict or not table.keys() >= ACCOUNT_REQUIRED:
        return None
    problems: list[str] = []
    resolved: dict[str, Any] = {}
    for key, value in table.items():
        check = ACCOUNT_FIELDS.get(key)
        resolved[key] = resolve_env(value, key, problems)
        if check is None or problems or not check(resolved[key]):
            return None
    return resolved


def _account_tables(data: dict[str, Any]) -> dict[str, dict[str, Any]] | None:
    """Each account's resolved settings, or None when any account may not pass the models."""
    accounts = data.get("accounts", {})
    if type(accounts) is not dict:
        return None
    tables: dict[str, dict[str, Any]] = {}
    for name, table in accounts.items():
        resolved = _account_table(table)
        if resolved is None:
            return None
        tables[name] = resolved
    return tables


def _webhooks_pass(data: dict[str, Any]) -> bool:
    table = data.get("webhooks", {})
    return type(table) is dict and all(
        key in WEBHOOK_FIELDS and WEBHOOK_FIELDS[key](value) for key, value in table.items()
    )


def file_passes(data: dict[str, Any], source: str) -> bool:
    """Whether the parsed file passes the quick check (``config.load_settings`` then accepts
    it too)."""
    return _passing_accounts(data, source) is not None


def _passing_accounts(data: dict[str, Any], source: str) -> dict[str, dict[str, Any]] | None:
    """The accounts' resolved settings when the whole file passes; None otherwise."""
    if unknown_tables(data) or not _webhooks_pass(data):
        return None
    tables = _account_tables(data)
    if tables is None:
        return None
    channels = {name: str(table["channel"]) for name, table in tables.items()}
    problems: list[str] = []
    parse_routes(data.get("routes"), channels, problems)
    if problems:
        return None
    api = data.get("api", {})
    try:
        max_body_bytes(api, source)
        api_limits(api, source)
    except ConfigError:
        return None
    return tables


def quick_config() -> QuickConfig | None:
    """The file as :class:`QuickConfig` when it is one ``config.settings()`` accepts; None
    when only the full loader can tell (it then raises, or not)."""
    path = config_path()
    tables: dict[str, dict[str, Any]] = {}
    webhooks = QuickWebhooks()
    if path.exists():
        try:
            data = read_toml(path)
        except (ConfigError, OSError):
            return None
        passing = _passing_accounts(data, str(path))
        if passing is None:
            return None
        tables = passing
        table = data.get("webhooks", {})
        webhooks = QuickWebhooks(
            allow_http=table.get("allow_http", False),
            allow_private_networks=table.get("allow_private_networks", False),
        )
    elif "TELEDISPATCH_CONFIG" in os.environ:
        return None
    return QuickConfig(
        database_url=os.environ.get("DATABASE_URL", DEFAULT_DATABASE_URL),
        tables=tables,
        webhooks=webhooks,
    )


def database_url() -> str | None:
    """``DATABASE_URL`` (or its default) when the config file is one ``config.settings()``
    accepts; None when only the full loader can tell (it then raises, or not)."""
    config = quick_config()
    return None if config is None else config.database_url
