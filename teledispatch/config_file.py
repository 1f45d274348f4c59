"""The config file as text and tables: reading the TOML, ``ENV:`` values, the top-level
tables and the ``[api]`` limits; the account and webhook models are ``teledispatch.config``.

Kept apart from the models so that what needs no model (the CLI's error handling, the quick
check of :mod:`teledispatch.config_quick`) imports no pydantic.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Any

from teledispatch.errors import Error

DEFAULT_CONFIG_PATH = "teledispatch.toml"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_DATABASE_URL = "sqlite:///teledispatch.db"
#: Requests bigger than a few thousand recipients belong in ``enqueue_stream`` or a CSV.
DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024
#: ``[api] max_upload_bytes``: a streamed CSV upload (``POST /v1/jobs/csv``) may be this big.
DEFAULT_MAX_UPLOAD_BYTES = 512 * 1024 * 1024
#: ``[api] rate_per_s`` and ``burst``: requests per API key, unless the key sets its own.
DEFAULT_API_RATE_PER_S = 200.0
DEFAULT_API_BURST = 400

WINDOW = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd])\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class ConfigError(Error, ValueError):
    """The configuration cannot be used; the message names every problem found."""


def parse_window(text: str) -> float:
    """``"5m"`` → 300.0. Windows are written the way providers publish their caps."""
    m = WINDOW.match(text)
    if not m:
        raise ValueError(f"window {text!r} must be a number followed by s, m, h or d (e.g. '5m')")
    return float(m.group(1)) * _UNIT_SECONDS[m.group(2)]


def resolve_env(value: Any, where: str, problems: list[str]) -> Any:
    if isinstance(value, str) and value.startswith("ENV:"):
        var = value[4:]
        if var not in os.environ:
            problems.append(f"{where}: environment variable {var} is not set")
            return ""
        return os.environ[var]
    if isinstance(value, list):
        return [resolve_env(v, where, problems) for v in value]
    return value


#: The config file's top-level tables; anything else is a typo that would silently drop a
#: setting (an ``[acounts.x]`` account that is never configured). ``[simulator]`` is written
#: by ``teledispatch simulate --write-config`` for the demo and tests, and ignored here.
TOP_LEVEL_TABLES = ("accounts", "api", "routes", "simulator", "webhooks")


def unknown_tables(data: dict[str, Any]) -> list[str]:
    problems = []
    for name in data:
        if name in TOP_LEVEL_TABLES:
            continue
        import difflib  # only for a typo: every CLI call reads the file, few have one

        near = difflib.get_close_matches(name, TOP_LEVEL_TABLES, n=1)
        hint = f"did you mean [{near[0]}]?" if near else f"known: {', '.join(TOP_LEVEL_TABLES)}"
        problems.append(f"unknown table [{name[:40]}] ({hint})")
    return problems


def config_path() -> Path:
    return Path(os.environ.get("TELEDISPATCH_CONFIG", DEFAULT_CONFIG_PATH))


def read_toml(path: Path) -> dict[str, Any]:
    """The file's tables; a file that is no TOML is a :class:`ConfigError`."""
    with path.open("rb") as fh:
        try:
            return tomllib.load(fh)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from None


def max_body_bytes(api: object, source: str) -> int:
    if not isinstance(api, dict):
        return DEFAULT_MAX_BODY_BYTES
    value = api.get("max_body_bytes", DEFAULT_MAX_BODY_BYTES)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{source}: [api] max_body_bytes must be a positive whole number")
    return value


def api_limits(api: object, source: str) -> dict[str, Any]:
    """``[api] rate_per_s``, ``burst`` and ``max_upload_bytes`` as ``Settings`` fields."""
    if not isinstance(api, dict):
        return {}
    found: dict[str, Any] = {}
    problems = []
    rate = api.get("rate_per_s", DEFAULT_API_RATE_PER_S)
    if isinstance(rate, bool) or not isinstance(rate, int | float) or rate < 0:
        problems.append("[api] rate_per_s must be a number >= 0 (0: unlimited)")
    else:
        found["api_rate_per_s"] = float(rate)
    for name, default in (("burst", DEFAULT_API_BURST), ("max_upload_bytes", 0)):
        value = api.get(name, default or DEFAULT_MAX_UPLOAD_BYTES)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            problems.append(f"[api] {name} must be a positive whole number")
        else:
            found[f"api_{name}"] = value
    if problems:
        raise ConfigError(f"{source}: " + "; ".join(problems))
    return found
