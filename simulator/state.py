"""Everything the simulator remembers, in memory, plus the request log tests read back.

The log is append-only and each entry is built once, so ``/_sim/requests?since=N`` is a slice
and a poller never makes the server re-serialise what it already fetched.
"""

from __future__ import annotations

import random
import string
import uuid
from dataclasses import dataclass, field
from typing import Any, NamedTuple

#: VMS tasks that exist from the start; numbers may be appended to them.
VMS_TASKS: tuple[str, ...] = ("sim-task-1", "sim-task-2")
#: A VMS task whose TTS template has variables: items without ``PhoneParamJson`` fail.
VMS_TTS_TASKS: tuple[str, ...] = ("sim-task-tts",)
AXN_POOL_NO = "NP000000000000000001"
AXN_PHONE_X: tuple[str, ...] = tuple(f"1312040{n:04d}" for n in range(1, 6))


def _token(rng: random.Random, length: int) -> str:
    alphabet = string.ascii_letters + string.digits
    return "".join(rng.choice(alphabet) for _ in range(length))


@dataclass(frozen=True, slots=True)
class Credentials:
    """One set per run. ``repr`` hides every secret so tracebacks and logs cannot leak them."""

    nx_access_key: str
    nx_secret: str = field(repr=False)
    nx_app_key: str
    us_access_key: str
    us_secret: str = field(repr=False)
    vms_access_key: str
    vms_secret: str = field(repr=False)
    axn_access_key: str
    axn_secret: str = field(repr=False)

    @classmethod
    def generate(cls, seed: int | None = None) -> Credentials:
        """Random per run; derived from ``seed`` when given so configs can be reproduced."""
        rng: random.Random = random.Random(seed) if seed is not None else random.SystemRandom()
        return cls(
            nx_access_key="nx" + _token(rng, 12),
            nx_secret=_token(rng, 24),
            nx_app_key="app" + _token(rng, 8),
            us_access_key="us" + _token(rng, 16),
            us_secret=_token(rng, 32),
            vms_access_key="AKLTvms" + _token(rng, 24),
            vms_secret=_token(rng, 40),
            axn_access_key="AKLTaxn" + _token(rng, 24),
            axn_secret=_token(rng, 40),
        )

    def volc_secret(self, access_key: str) -> str | None:
        """Both Volcengine accounts may call either action, as one IAM key could."""
        if access_key == self.vms_access_key:
            return self.vms_secret
        if access_key == self.axn_access_key:
            return self.axn_secret
        return None


# One record per accepted message, kept for the whole run. SimState stores them as *plain*
# tuples of strings and numbers, which CPython's cyclic collector stops tracking (it untracks
# exact tuples only, not NamedTuple instances), so a full collection never walks every message
# ever accepted: such pauses delay the stamping of requests that arrive meanwhile.


class NxMessage(NamedTuple):
    phone: str
    content: str
    sender: str
    sent_at: float
    dr_due: float
    delivered: bool


class UsTarget(NamedTuple):
    phone: str
    sent_at: float
    receipt_due: float
    delivered: bool


@dataclass(slots=True)
class AxnBinding:
    sub_id: str
    phone_a: str
    phone_b: str
    phone_x: str
    expire_time: int


class SimState:
    """Provider-side state of all four operations; reset by ``POST /_sim/reset``."""

    def __init__(self, seed: int | None = None) -> None:
        self._seed = seed
        self.reset()

    def reset(self) -> None:
        # Ids come from their own generator so fault decisions do not shift when ids are drawn.
        self._ids = random.Random(None if self._seed is None else self._seed + 1)
        self._counter = 0
        self.generation = getattr(self, "generation", 0) + 1
        self.log: list[dict[str, Any]] = []
        self._nx_messages: dict[str, tuple[Any, ...]] = {}
        self._us_sessions: dict[str, list[tuple[Any, ...]]] = {}
        self.vms_tasks: dict[str, set[str]] = {t: set() for t in VMS_TASKS + VMS_TTS_TASKS}
        self.vms_tts_tasks: frozenset[str] = frozenset(VMS_TTS_TASKS)
        self.axn_pools: dict[str, frozenset[str]] = {AXN_POOL_NO: frozenset(AXN_PHONE_X)}
        self.axn_bindings: dict[tuple[str, str], AxnBinding] = {}

    def add_nx_message(self, message_id: str, message: NxMessage) -> None:
        self._nx_messages[message_id] = tuple(message)

    def nx_message(self, message_id: str) -> NxMessage | None:
        raw = self._nx_messages.get(message_id)
        return None if raw is None else NxMessage._make(raw)

    def add_us_session(self, session: str, targets: list[UsTarget]) -> None:
        self._us_sessions[session] = [tuple(t) for t in targets]

    def us_session(self, session: str) -> list[UsTarget] | None:
        raw = self._us_sessions.get(session)
        return None if raw is None else [UsTarget._make(t) for t in raw]

    def new_uuid(self) -> str:
        return str(uuid.UUID(int=self._ids.getrandbits(128), version=4))

    def new_serial(self, prefix: str) -> str:
        self._counter += 1
        return f"{prefix}{self._counter:012d}{self._ids.getrandbits(24):06x}"

    def record(
        self,
        *,
        t: float,
        channel: str,
        ids: list[str],
        http_status: int,
        code: int | str | None,
        accepted: list[str],
        dropped: bool = False,
    ) -> None:
        self.log.append(
            {
                "t": t,
                "channel": channel,
                "ids": ids,
                "http_status": http_status,
                "code": code,
                "accepted": accepted,
                "dropped": dropped,
            }
        )
