"""The Lua scripts of the rate limiter, registered once per Redis client.

``register_script`` runs them by EVALSHA and loads them on ``NOSCRIPT`` (after a Redis restart
or ``SCRIPT FLUSH``), so a call is one round trip in the steady state.

Scripts that take "now" as ``ARGV[1]`` get ``lua/_prelude.lua`` prepended when loaded, so the
rule "a test's clock, else the server's" is written once. Line numbers in a Lua error message
therefore count the prelude's lines too.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from typing import Any

import redis
from redis.commands.core import Script

#: Microseconds per second: every time crossing the Lua boundary is in whole microseconds.
US = 1_000_000

#: The scripts whose ``ARGV[1]`` is "now in us, or '' for the server clock".
_USES_NOW = frozenset(
    {"reserve", "depart", "defer", "slot_acquire", "throttle", "recipient_depart", "park_pop"}
)


def _read(name: str) -> str:
    return (
        files("teledispatch.worker.ratelimit")
        .joinpath("lua", f"{name}.lua")
        .read_text(encoding="utf-8")
    )


@cache
def lua_source(name: str) -> str:
    """The text run for ``worker/ratelimit/lua/<name>.lua``: the file, behind the prelude if it
    takes "now" as ``ARGV[1]``. Read from the installed package."""
    if name in _USES_NOW:
        return _read("_prelude") + "\n" + _read(name)
    return _read(name)


def now_arg(now_ms: float | None) -> str:
    """``ARGV[1]`` of a script that reads the clock: "" means the Redis server's clock."""
    return "" if now_ms is None else str(round(now_ms * 1000))


@dataclass(frozen=True, slots=True)
class Scripts:
    reserve: Script
    throttle: Script
    defer: Script
    slot_acquire: Script
    slot_release: Script
    depart: Script
    confirm: Script
    recipient_depart: Script
    recipient_confirm: Script
    recipient_refund: Script
    park_pop: Script

    @classmethod
    def register(cls, client: redis.Redis[Any]) -> Scripts:
        return cls(
            **{
                name: client.register_script(lua_source(name))
                for name in (
                    "reserve",
                    "throttle",
                    "defer",
                    "slot_acquire",
                    "slot_release",
                    "depart",
                    "confirm",
                    "recipient_depart",
                    "recipient_confirm",
                    "recipient_refund",
                    "park_pop",
                )
            }
        )
