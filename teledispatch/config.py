"""Configuration: accounts from a TOML file, infrastructure URLs from the environment.

Accounts live in ``./teledispatch.toml`` (or the file named by ``TELEDISPATCH_CONFIG``), one table
per account under ``[accounts.NAME]``. Any string value written as ``ENV:VARNAME`` is read from
the environment when the file is loaded, so the file itself never has to hold a secret.
Secrets are held as :class:`pydantic.SecretStr` so that ``repr``, logs and tracebacks show
``'**********'`` instead of the value.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from teledispatch.channels.ids import Channel

# The file's side (defaults, ConfigError, ENV:, the [api] limits) is config_file's; named here
# too, where callers have always found it.
from teledispatch.config_file import DEFAULT_API_BURST as DEFAULT_API_BURST
from teledispatch.config_file import DEFAULT_API_RATE_PER_S as DEFAULT_API_RATE_PER_S
from teledispatch.config_file import DEFAULT_CONFIG_PATH as DEFAULT_CONFIG_PATH
from teledispatch.config_file import DEFAULT_DATABASE_URL as DEFAULT_DATABASE_URL
from teledispatch.config_file import DEFAULT_MAX_BODY_BYTES as DEFAULT_MAX_BODY_BYTES
from teledispatch.config_file import DEFAULT_MAX_UPLOAD_BYTES as DEFAULT_MAX_UPLOAD_BYTES
from teledispatch.config_file import DEFAULT_REDIS_URL as DEFAULT_REDIS_URL
from teledispatch.config_file import TOP_LEVEL_TABLES as TOP_LEVEL_TABLES
from teledispatch.config_file import ConfigError as ConfigError
from teledispatch.config_file import api_limits as _api_limits
from teledispatch.config_file import config_path as config_path
from teledispatch.config_file import max_body_bytes as _max_body_bytes
from teledispatch.config_file import parse_window as parse_window
from teledispatch.config_file import read_toml
from teledispatch.config_file import resolve_env as _resolve_env
from teledispatch.config_file import unknown_tables as _unknown_tables
from teledispatch.routes import Route, parse_routes


class RecipientCap(BaseModel):
    """At most ``count`` messages to one recipient within any ``window_s`` seconds."""

    model_config = ConfigDict(frozen=True)
    count: int = Field(gt=0)
    window_s: float = Field(gt=0)


class AccountConfig(BaseModel):
    """One provider account. Field names are fixed: they are the documented config keys."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    channel: Channel
    base_url: str
    #: NXCloud ``accessKey``, USpeedo ``accesskeyId``, Volcengine access key id.
    access_key: str = ""
    #: NXCloud ``accessSecret``, USpeedo ``accesskeySecret``, Volcengine secret access key.
    secret: SecretStr = SecretStr("")
    #: NXCloud ``appKey``.
    app_key: str = ""
    #: Volcengine signing scope.
    region: str = "cn-north-1"
    service: str = "vms"

    max_batch: int = Field(default=0, ge=0)
    max_attempts: int = Field(default=5, ge=1)
    linger_ms: int = Field(default=250, ge=0)
    timeout_s: float = Field(default=10.0, gt=0)
    backoff_base_s: float = Field(default=1.0, gt=0)
    backoff_max_s: float = Field(default=300.0, gt=0)
    on_ambiguous: Literal["reconcile", "resend", "fail"] = "reconcile"

    max_requests_per_second: float | None = Field(default=None, gt=0)
    max_messages_per_second: float | None = Field(default=None, gt=0)
    max_messages_per_hour: int | None = Field(default=None, gt=0)
    max_messages_per_day: int | None = Field(default=None, gt=0)
    recipient_caps: tuple[RecipientCap, ...] = ()
    concurrency: int | None = Field(default=None, gt=0)

    #: The lane of a job that names none: ``high``, ``normal`` or ``low``.
    default_priority: Literal["high", "normal", "low"] = "normal"
    #: Seconds after a job's start its messages expire when the job sets no expiry (an OTP is
    #: worthless after minutes); None: never.
    default_ttl_s: float | None = Field(default=None, gt=0)
    #: The circuit (``teledispatch.circuits``): this many "provider unwell" failures in a row
    #: pause the account (0: never); then one probe of ``circuit_probe_size`` messages is sent
    #: after ``circuit_probe_min_s``, the wait doubling up to ``circuit_probe_max_s``.
    circuit_failures: int = Field(default=5, ge=0)
    circuit_probe_min_s: float = Field(default=1.0, gt=0)
    circuit_probe_max_s: float = Field(default=30.0, gt=0)
    circuit_probe_size: int = Field(default=1, ge=1)

    #: Accept any valid number, not only the types the channel can reach (an SMS to a fixed
    #: line is refused otherwise): for a provider that reaches more (e.g. SMS to fixed lines).
    allow_any_number_type: bool = False

    #: Price of one SMS segment (one message for other channels) by E.164 country prefix,
    #: ``{"86": 0.05, "*": 0.08}`` in TOML; the longest matching prefix wins, ``*`` is the rest.
    #: Only the dry run's cost estimate reads it. A tuple of pairs: the model is hashable.
    prices: tuple[tuple[str, float], ...] = ()

    #: ``"21:00-08:00"``: local hours (in the recipient's time zone, from the number) when
    #: ``normal`` and ``low`` messages are held, deferred to the window's end; a job's own
    #: ``quiet_hours`` wins. None: none.
    quiet_hours: str | None = None

    #: Shared secret in the delivery-receipt URL (NXCloud DRs are unsigned) / Volcengine authToken.
    callback_token: SecretStr = SecretStr("")
    #: Where status webhooks of this account's jobs go unless a job names its own URL.
    callback_url: str = ""
    #: Signs every webhook request (``Teledispatch-Signature``); write it as ``ENV:NAME``.
    callback_secret: SecretStr = SecretStr("")
    #: Finished jobs of this account older than this are purged with their rows (``db purge``
    #: without ``--older-than``, and the beat task ``maintenance.purge``).
    retention_days: float = Field(default=30.0, gt=0)

    @field_validator("recipient_caps", mode="before")
    @classmethod
    def _caps(cls, value: Any) -> Any:
        if not isinstance(value, list | tuple):
            return value
        caps = []
        for item in value:
            if isinstance(item, list | tuple) and len(item) == 2:
                count, window = item
                seconds = parse_window(window) if isinstance(window, str) else window
                caps.append({"count": count, "window_s": seconds})
            else:
                caps.append(item)
        return caps

    @field_validator("quiet_hours")
    @classmethod
    def _quiet(cls, value: str | None) -> str | None:
        # Imported here, like batch_size's registry: config is imported by nearly everything.
        from teledispatch.quiet_hours import validate

        return validate(value)

    @field_validator("prices", mode="before")
    @classmethod
    def _prices(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        for prefix, price in value.items():
            if prefix != "*" and not (prefix.isdigit() and len(prefix) <= 6):
                raise ValueError(f"price prefix {prefix!r} must be digits of a country code or *")
            if isinstance(price, bool) or not isinstance(price, int | float) or price < 0:
                raise ValueError(f"price for {prefix!r} must be a number >= 0")
        return tuple(sorted((str(k), float(v)) for k, v in value.items()))

    @property
    def batch_size(self) -> int:
        """The batch size in force: the account's setting, never above the provider's limit."""
        # Imported here: the registry's modules import this one (AccountConfig).
        from teledispatch.channels.registry import max_batch

        limit = max_batch(self.channel)
        return min(self.max_batch, limit) if self.max_batch else limit


class WebhookSettings(BaseModel):
    """The ``[webhooks]`` table: delivery of status events to the apps' callback URLs."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: Plain ``http`` URLs (tests and local receivers only).
    allow_http: bool = False
    #: Private, loopback and link-local addresses (tests and local receivers only).
    allow_private_networks: bool = False
    #: An event still failing this long after its first failed attempt is dead-lettered.
    retry_window_s: float = Field(default=24 * 3600.0, gt=0)
    #: The first retry's delay; each later one doubles, up to ``max_backoff_s``.
    backoff_base_s: float = Field(default=1.0, gt=0)
    max_backoff_s: float = Field(default=3600.0, gt=0)
    #: Events per request.
    batch_size: int = Field(default=200, ge=1, le=1000)
    timeout_s: float = Field(default=10.0, gt=0)
    #: A response body is read up to this many bytes (then the connection is dropped).
    max_response_bytes: int = Field(default=4096, ge=0)


def parse_webhooks(data: dict[str, Any], source: str = "<memory>") -> WebhookSettings:
    table = data.get("webhooks", {})
    if not isinstance(table, dict):
        raise ConfigError(f"{source}: [webhooks] must be a table")
    try:
        return WebhookSettings(**table)
    except ValidationError as exc:
        problems = [f"webhooks.{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()]
        raise ConfigError(f"{source}: " + "; ".join(problems)) from None


@dataclass(frozen=True)
class Settings:
    accounts: dict[str, AccountConfig] = field(default_factory=dict)
    redis_url: str = DEFAULT_REDIS_URL
    database_url: str = DEFAULT_DATABASE_URL
    source: str = "<defaults>"
    #: The file's ``[api] keys`` as written (``None``: ``[api]`` is not a table). Checked by
    #: ``teledispatch.api.auth``, which uses it, so a worker never fails on an API setting.
    api_keys: object = ()
    #: ``[api] max_body_bytes``: a bigger request body is refused (413) before it is parsed.
    api_max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    #: ``[api] max_upload_bytes``: the bound of a streamed CSV upload (not ``max_body_bytes``).
    api_max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES
    #: ``[api] rate_per_s`` / ``burst``: each key's request rate unless it sets its own; 0:
    #: unlimited.
    api_rate_per_s: float = DEFAULT_API_RATE_PER_S
    api_burst: int = DEFAULT_API_BURST
    #: ``CELERY_BROKER_URL`` (e.g. RabbitMQ, ``amqp://…``); unset: the broker is Redis at
    #: ``redis_url``. Limits, circuits and wake-up keys stay in Redis either way.
    broker_url: str | None = None

    @property
    def celery_broker_url(self) -> str:
        return self.broker_url or self.redis_url

    webhooks: WebhookSettings = field(default_factory=WebhookSettings)
    #: ``[routes.NAME]``: a job may name one instead of an account (``teledispatch.routes``).
    routes: dict[str, Route] = field(default_factory=dict)

    def route(self, name: str) -> Route:
        try:
            return self.routes[name]
        except KeyError:
            known = ", ".join(sorted(self.routes)) or "none"
            raise ConfigError(
                f"route {name!r} is not configured in {self.source} (configured: {known})"
            ) from None

    def account(self, name: str) -> AccountConfig:
        try:
            return self.accounts[name]
        except KeyError:
            known = ", ".join(sorted(self.accounts)) or "none"
            raise ConfigError(
                f"account {name!r} is not configured in {self.source} (configured: {known})"
            ) from None


def parse_config(data: dict[str, Any], source: str = "<memory>") -> dict[str, AccountConfig]:
    """Build accounts from parsed TOML; one :class:`ConfigError` lists every problem."""
    problems: list[str] = _unknown_tables(data)
    accounts: dict[str, AccountConfig] = {}
    raw_accounts = data.get("accounts", {})
    if not isinstance(raw_accounts, dict):
        raise ConfigError(f"{source}: [accounts] must be a table of tables")
    for name, table in raw_accounts.items():
        if not isinstance(table, dict):
            problems.append(f"accounts.{name}: must be a table")
            continue
        if "name" in table:
            # The table's own name is the account's: a key would clash with it as an argument.
            problems.append(f"accounts.{name}.name: not a setting (the table name is the name)")
            continue
        resolved = {k: _resolve_env(v, f"accounts.{name}.{k}", problems) for k, v in table.items()}
        try:
            accounts[name] = AccountConfig(name=name, **resolved)
        except ValidationError as exc:
            for err in exc.errors():
                loc = ".".join(str(p) for p in err["loc"])
                problems.append(f"accounts.{name}.{loc}: {err['msg']}")
    if problems:
        raise ConfigError(f"{source}: " + "; ".join(problems))
    return accounts


def parse_route_tables(
    data: dict[str, Any], accounts: dict[str, AccountConfig], source: str = "<memory>"
) -> dict[str, Route]:
    """The ``[routes]`` tables, checked against the accounts; one ConfigError lists all."""
    problems: list[str] = []
    channels = {name: str(account.channel) for name, account in accounts.items()}
    routes = parse_routes(data.get("routes"), channels, problems)
    if problems:
        raise ConfigError(f"{source}: " + "; ".join(problems))
    return routes


def load_settings(path: Path | None = None) -> Settings:
    """Read the config file (a missing default file means no accounts) and the environment."""
    path = path or config_path()
    accounts: dict[str, AccountConfig] = {}
    api_keys: object = ()
    max_body = DEFAULT_MAX_BODY_BYTES
    limits: dict[str, Any] = {}
    webhooks = WebhookSettings()
    routes: dict[str, Route] = {}
    if path.exists():
        data = read_toml(path)
        accounts = parse_config(data, str(path))
        webhooks = parse_webhooks(data, str(path))
        routes = parse_route_tables(data, accounts, str(path))
        api = data.get("api", {})
        api_keys = api.get("keys", []) if isinstance(api, dict) else None
        max_body = _max_body_bytes(api, str(path))
        limits = _api_limits(api, str(path))
    elif "TELEDISPATCH_CONFIG" in os.environ:
        raise ConfigError(f"TELEDISPATCH_CONFIG names {path}, which does not exist")
    return Settings(
        accounts=accounts,
        redis_url=os.environ.get("REDIS_URL", DEFAULT_REDIS_URL),
        database_url=os.environ.get("DATABASE_URL", DEFAULT_DATABASE_URL),
        broker_url=os.environ.get("CELERY_BROKER_URL") or None,
        source=str(path),
        api_keys=api_keys,
        api_max_body_bytes=max_body,
        webhooks=webhooks,
        **limits,
        routes=routes,
    )


@lru_cache(maxsize=1)
def settings() -> Settings:
    """Process-wide settings, read once: workers and the CLI share one view of the file."""
    return load_settings()


def env_float(name: str, default: float) -> float:
    """A number of seconds from the environment; a value that is not one is a ConfigError
    naming the variable (a typo must not silently become the default)."""
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        return float(text)
    except ValueError:
        raise ConfigError(f"{name}={text!r} is not a number of seconds") from None


@dataclass(frozen=True)
class WorkerTimings:
    """The worker's schedule knobs, read from the environment when the worker imports them."""

    #: Beat interval of the sweep (``TELEDISPATCH_SWEEP_S``).
    sweep_s: float
    #: Beat interval of USpeedo receipt polling (``TELEDISPATCH_RECEIPTS_S``).
    receipts_s: float
    #: First receipt poll this long after the send (``TELEDISPATCH_RECEIPT_POLL_DELAY_S``).
    receipt_poll_delay_s: float
    #: Between polls of a receipt still ``Unknow`` (``TELEDISPATCH_RECEIPT_REPOLL_S``).
    receipt_repoll_s: float
    #: Stop asking for a receipt (``TELEDISPATCH_RECEIPT_GIVE_UP_S``).
    receipt_give_up_s: float
    #: Beat interval of the webhook outbox drain (``TELEDISPATCH_WEBHOOKS_S``).
    webhooks_s: float = 1.0
    #: Beat interval of the retention purge (``TELEDISPATCH_PURGE_S``).
    purge_s: float = 3600.0


def worker_timings() -> WorkerTimings:
    return WorkerTimings(
        sweep_s=env_float("TELEDISPATCH_SWEEP_S", 1.0),
        receipts_s=env_float("TELEDISPATCH_RECEIPTS_S", 10.0),
        receipt_poll_delay_s=env_float("TELEDISPATCH_RECEIPT_POLL_DELAY_S", 300.0),
        receipt_repoll_s=env_float("TELEDISPATCH_RECEIPT_REPOLL_S", 60.0),
        # Carriers report within hours or never.
        receipt_give_up_s=env_float("TELEDISPATCH_RECEIPT_GIVE_UP_S", 72 * 3600.0),
        webhooks_s=env_float("TELEDISPATCH_WEBHOOKS_S", 1.0),
        purge_s=env_float("TELEDISPATCH_PURGE_S", 3600.0),
    )
