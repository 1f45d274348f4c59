"""An account's circuit: its Redis key and what an operator is shown about it.

A run of "provider unwell" failures (:attr:`teledispatch.errors.DispatchError.unwell`) opens the
account's circuit; while it is open no batch of the account is claimed but one small probe at
growing intervals, and a probe that succeeds closes it. The worker changes the state
(``teledispatch.worker.circuit``, in Lua so that every worker process shares one circuit); the
CLI and the API only read it, so the key's name and layout are written here, in the kernel,
which both sides import.

The key is one hash, absent while the account is healthy and nothing has failed:

* ``state`` — ``open`` or ``half_open`` (a probe is in flight); absent or ``closed``: closed;
* ``failures`` — "unwell" failures in a row while closed (any good answer resets it);
* ``reason`` — the error that opened it, as ``[code] message``;
* ``opened_ms`` / ``next_probe_ms`` — epoch milliseconds: since when, and when the next probe
  may leave; ``interval_ms`` — the current wait between probes;
* ``probe_until_ms`` — while ``half_open``: when the probe's claim is given up as lost.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import redis

#: Circuit states as the metric gauge numbers them (``teledispatch_circuit_state``).
CLOSED, OPEN, HALF_OPEN = 0, 1, 2
STATE_NUMBERS = {"closed": CLOSED, "open": OPEN, "half_open": HALF_OPEN}


def circuit_key(account: str) -> str:
    return f"td:circuit:{{{account}}}"


@dataclass(frozen=True, slots=True)
class CircuitView:
    """What an operator is told about one account's circuit."""

    state: str
    reason: str = ""
    since: float | None = None
    next_probe: float | None = None

    @property
    def paused(self) -> bool:
        return self.state != "closed"

    def describe(self) -> str | None:
        """``paused: <reason> since <time>, next probe at <time>``; None while closed."""
        if not self.paused:
            return None
        probe = "probe in flight" if self.state == "half_open" else "next probe at"
        when = "" if self.state == "half_open" else f" {_iso(self.next_probe)}"
        return f"paused: {self.reason or 'provider unwell'} since {_iso(self.since)}, {probe}{when}"


def _iso(epoch: float | None) -> str:
    if epoch is None:
        return "?"
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _ms(raw: dict[bytes, bytes], field: bytes) -> float | None:
    value = raw.get(field)
    return None if value is None else int(value) / 1000


def view(client: redis.Redis[Any], account: str) -> CircuitView:
    """One ``HGETALL``: cheap enough for every status call."""
    raw: dict[bytes, bytes] = client.hgetall(circuit_key(account))
    state = raw.get(b"state", b"closed").decode()
    if state == "closed":
        return CircuitView("closed")
    return CircuitView(
        state,
        raw.get(b"reason", b"").decode(errors="replace"),
        _ms(raw, b"opened_ms"),
        _ms(raw, b"next_probe_ms"),
    )


@lru_cache(maxsize=4)
def redis_client(redis_url: str) -> redis.Redis[Any]:
    """A short-timeout client for reads like :func:`view`, one pool per URL per process (an
    API replica answers many status calls)."""
    return redis.Redis.from_url(redis_url, socket_timeout=1, socket_connect_timeout=1)


_client = redis_client


def describe(redis_url: str, account: str) -> str | None:
    """The operator's line for ``account``, or None while healthy or if Redis cannot be read
    (a status call must not fail because the circuit's store is down)."""
    try:
        return view(_client(redis_url), account).describe()
    except redis.RedisError:
        return None
