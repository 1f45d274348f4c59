"""Fault options as the command line and ``POST /_sim/faults`` write them, checked one way.

Each option has a global form (``--fail-rate 0.1``, ``{"fail_rate": 0.1}``) and a channel form
(``--fail-rate nxcloud.sms=1.0``, ``{"channel": "nxcloud.sms", "fail_rate": 1.0}``). A value
that is wrong is refused with its option's name in the message, so a test or an operator
sees which setting was bad.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from teledispatch.simulator.faults import (
    CHANNELS,
    USPEEDO_SHAPES,
    RecipientCap,
    parse_recipient_cap,
)


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError(f"{name} must be a number, not {value!r}")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    raise ValueError(f"{name} must be a number, not {value!r}")


def _rate(name: str, value: Any) -> float:
    number = _number(name, value)
    if not 0.0 <= number <= 1.0:
        raise ValueError(f"{name} must be a share between 0 and 1, not {value!r}")
    return number


def _millis(name: str, value: Any) -> float:
    number = _number(name, value)
    if number < 0:
        raise ValueError(f"{name} must not be negative, not {value!r}")
    return number


def _integer(name: str, value: Any) -> int:
    number = _number(name, value)
    if not number.is_integer():
        raise ValueError(f"{name} must be a whole number, not {value!r}")
    return int(number)


def _status(name: str, value: Any) -> int:
    status = _integer(name, value)
    if not 400 <= status <= 599:
        raise ValueError(f"{name} must be an HTTP error status (400-599), not {value!r}")
    return status


def _tps(name: str, value: Any) -> int | None:
    if value is None or value == "none":
        return None
    tps = _integer(name, value)
    if tps <= 0:
        raise ValueError(f"{name} must be a positive integer, not {value!r}")
    return tps


def _cap(name: str, value: Any) -> RecipientCap | None:
    if value is None or value == "none":
        return None
    if not isinstance(value, str):
        raise ValueError(f"{name} must look like COUNT/WINDOW, e.g. 5/1h, not {value!r}")
    return parse_recipient_cap(value)


def _shape(name: str, value: Any) -> str:
    if value not in USPEEDO_SHAPES:
        raise ValueError(f"{name} must be one of {', '.join(USPEEDO_SHAPES)}, not {value!r}")
    return str(value)


def _retcode(name: str, value: Any) -> int:
    code = _integer(name, value)
    if code < 0:
        raise ValueError(f"{name} must not be negative, not {value!r}")
    return code


def _flag(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if value in ("true", "1", "yes", "on"):
        return True
    if value in ("false", "0", "no", "off"):
        return False
    raise ValueError(f"{name} must be true or false, not {value!r}")


def _prefixes(name: str, value: Any) -> str:
    text = "" if value is None else str(value)
    if not all(p.isdigit() for p in text.split(",") if p) or text.strip(",") != text:
        raise ValueError(f"{name} must be country prefixes separated by commas, not {value!r}")
    return text


#: Every fault that may be set per channel and changed while running, with its checker.
OPTIONS: dict[str, Callable[[str, Any], Any]] = {
    "fail_rate": _rate,
    "fail_status": _status,
    "internal_error_rate": _rate,
    "item_fail_rate": _rate,
    "drop_response_rate": _rate,
    "latency_ms": _millis,
    "timeout_rate": _rate,
    "timeout_ms": _millis,
    "tps": _tps,
    "recipient_cap": _cap,
    "dr_delay_ms": _millis,
    "dr_fail_rate": _rate,
    "nx_rate_limit_rate": _rate,
    "nxcloud_plain_items": _flag,
    "uspeedo_shape": _shape,
    "uspeedo_partial_retcode": _retcode,
    "unsupported_prefixes": _prefixes,
}


def coerce(name: str, value: Any) -> Any:
    """``value`` (JSON value or command-line text) checked and converted for option ``name``."""
    check = OPTIONS.get(name)
    if check is None:
        raise ValueError(f"unknown fault option {name!r}; known: {', '.join(OPTIONS)}")
    return check(name, value)


def check_channel(channel: Any) -> str:
    if channel not in CHANNELS:
        raise ValueError(f"unknown channel {channel!r}; one of {', '.join(CHANNELS)}")
    return str(channel)


def split_scoped(text: str) -> tuple[str | None, str]:
    """``"nxcloud.sms=1.0"`` → ``("nxcloud.sms", "1.0")``; ``"1.0"`` → ``(None, "1.0")``."""
    channel, sep, value = text.partition("=")
    if not sep:
        return None, text
    return check_channel(channel.strip()), value.strip()


def from_command_line(
    values: Mapping[str, Iterable[str]],
) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """Global settings and per-channel overrides from each option's repeated values."""
    global_: dict[str, Any] = {}
    channels: dict[str, dict[str, Any]] = {}
    for name, texts in values.items():
        for text in texts:
            channel, raw = split_scoped(text)
            target = global_ if channel is None else channels.setdefault(channel, {})
            target[name] = coerce(name, raw)
    return global_, channels


def from_request(payload: Any) -> tuple[str | None, dict[str, Any], bool]:
    """``(channel or None, changes, clear)`` from a ``POST /_sim/faults`` body."""
    if not isinstance(payload, dict):
        raise ValueError("the body must be a JSON object of fault options")
    body = dict(payload)
    channel = body.pop("channel", None)
    if channel is not None:
        channel = check_channel(channel)
    clear = body.pop("clear", False)
    if not isinstance(clear, bool):
        raise ValueError(f"clear must be true or false, not {clear!r}")
    if "seed" in body:
        raise ValueError("seed cannot be changed while running")
    if not body and not clear:
        raise ValueError("no fault options given")
    return channel, {name: coerce(name, value) for name, value in body.items()}, clear
