"""The Lua scripts of the rate limiter, registered once per Redis client.

``register_script`` runs them by EVALSHA and loads them on ``NOSCRIPT`` (after a Redis restart
or ``SCRIPT FLUSH``), so a call is one round trip in the steady state.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from typing import Any

import redis
from redis.commands.core import Script


@cache
def lua_source(name: str) -> str:
    """The text of ``worker/ratelimit/lua/<name>.lua``, read from the installed package."""
    return (
        files("teledispatch.worker.ratelimit")
        .joinpath("lua", f"{name}.lua")
        .read_text(encoding="utf-8")
    )


@dataclass(frozen=True, slots=True)
class Scripts:
    reserve: Script
    throttle: Script
    defer: Script
    slot_acquire: Script
    slot_release: Script
    depart: Script
    confirm: Script

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
                )
            }
        )
