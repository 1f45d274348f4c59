"""What every channel handler works with: options, state, faults, clock, and its reply type."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from teledispatch.simulator.faults import FaultConfig, Faults
from teledispatch.simulator.state import Credentials, SimState

Clock = Callable[[], float]


@dataclass(frozen=True, slots=True)
class SimOptions:
    faults: FaultConfig = field(default_factory=FaultConfig)
    #: Per-channel fault overrides: channel → {FaultConfig field: value}.
    channel_faults: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    #: USpeedo's per-request number limit (older doc: 1000; current doc silent).
    uspeedo_max_targets: int = 1000
    #: Volcengine signing region the simulated gateway expects.
    volc_region: str = "cn-north-1"
    #: NXCloud's documented tolerance for the ``ts`` header.
    nx_max_skew_s: float = 60.0


@dataclass(slots=True)
class Reply:
    """A channel's answer before latency and connection faults are applied."""

    status: int
    body: bytes
    headers: dict[str, str] | None = None
    content_type: str = "application/json"
    #: Process fully, then close the connection instead of answering (ambiguous send).
    drop: bool = False


def dumps(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()


def json_reply(status: int, obj: Any, headers: dict[str, str] | None = None) -> Reply:
    return Reply(status, dumps(obj), headers)


class Sim:
    """The simulator's world; handlers are synchronous, so each request's checks and state
    changes happen atomically on the event loop (no interleaving between awaits)."""

    def __init__(
        self,
        options: SimOptions,
        credentials: Credentials,
        clock: Clock = time.time,
    ) -> None:
        self.options = options
        self.credentials = credentials
        self.clock = clock
        self.state = SimState(options.faults.seed)
        self.faults = Faults(options.faults, options.channel_faults)
        #: Filled by the app: ``schedule_dr(url, form_fields, delay_s)``.
        self.schedule_dr: Callable[[str, dict[str, str], float], None] = lambda *_: None

    def reset(self) -> None:
        self.state.reset()
        self.faults.reset()


def lower_headers(raw: list[tuple[bytes, bytes]]) -> dict[str, str]:
    """ASGI header pairs → lowercase name → value; repeats joined with ``,`` as HTTP allows."""
    out: dict[str, str] = {}
    for name, value in raw:
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        out[key] = f"{out[key]},{text}" if key in out else text
    return out
