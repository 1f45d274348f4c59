"""Open, probe and close an account's circuit: one Lua call per decision, shared by workers.

Times cross into Lua as epoch milliseconds from the caller's clock (``Context.clock``), so a
test moves the circuit through its states by advancing a fake clock.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from importlib.resources import files
from typing import Any

import redis
from redis.commands.core import Script

from teledispatch.circuits import CLOSED, HALF_OPEN, OPEN, circuit_key
from teledispatch.config import AccountConfig
from teledispatch.errors import DispatchError
from teledispatch.worker import metrics

log = logging.getLogger("teledispatch.circuit")

_SCRIPTS = ("gate", "failure", "success", "abandon")


def _ms(seconds: float) -> int:
    return round(seconds * 1000)


@dataclass(frozen=True, slots=True)
class Gate:
    """May a dispatch claim now: as usual, as the one probe, or not before ``wait_s``."""

    probe: bool = False
    wait_s: float | None = None


@dataclass(frozen=True, slots=True)
class Trip:
    """The circuit after one unwell failure."""

    is_open: bool
    next_probe: float | None = None


class Circuit:
    """The circuit of every account, on one Redis client."""

    def __init__(self, client: redis.Redis[Any]) -> None:
        self._scripts: dict[str, Script] = {
            name: client.register_script(
                files("teledispatch.worker.circuit")
                .joinpath("lua", f"{name}.lua")
                .read_text(encoding="utf-8")
            )
            for name in _SCRIPTS
        }

    def gate(self, account: AccountConfig, now: float, probe_lease_s: float) -> Gate:
        """Before a claim. A probe's lease bounds how long a lost probe blocks the next."""
        if not account.circuit_failures:
            return Gate()
        kind, wait_ms = self._scripts["gate"](
            keys=[circuit_key(account.name)],
            args=[_ms(now), _ms(probe_lease_s), _ms(account.circuit_probe_min_s)],
        )
        state = {0: CLOSED, 1: HALF_OPEN}.get(int(kind), OPEN)
        metrics.record_circuit(account, state)
        if kind == 0:
            return Gate()
        if kind == 1:
            return Gate(probe=True)
        return Gate(wait_s=int(wait_ms) / 1000)

    def failure(self, account: AccountConfig, now: float, exc: DispatchError) -> Trip:
        """A request met a failure that says the provider is unwell."""
        if not account.circuit_failures:
            return Trip(False)
        opened, is_open, next_ms, failures = self._scripts["failure"](
            keys=[circuit_key(account.name)],
            args=[
                _ms(now),
                account.circuit_failures,
                _ms(account.circuit_probe_min_s),
                _ms(account.circuit_probe_max_s),
                str(exc)[:200],
            ],
        )
        if opened:
            metrics.record_circuit(account, OPEN)
            log.warning(
                "circuit of account %s opened after %d provider failures in a row (%s): "
                "its messages wait, one probe every %g-%g s",
                account.name,
                int(failures),
                exc,
                account.circuit_probe_min_s,
                account.circuit_probe_max_s,
            )
        if not is_open:
            return Trip(False)
        return Trip(True, int(next_ms) / 1000)

    def success(self, account: AccountConfig) -> bool:
        """The provider answered; True if that closed an open circuit."""
        if not account.circuit_failures:
            return False
        closed = bool(self._scripts["success"](keys=[circuit_key(account.name)]))
        if closed:
            metrics.record_circuit(account, CLOSED)
            log.warning("circuit of account %s closed: the provider answered again", account.name)
        return closed

    def abandon(self, account: AccountConfig, now: float) -> None:
        """The probe's turn ended unanswered: open again for one more interval."""
        if account.circuit_failures:
            self._scripts["abandon"](
                keys=[circuit_key(account.name)],
                args=[_ms(now), _ms(account.circuit_probe_min_s)],
            )
