"""Per-process resources the domain functions need, built once and rebuilt after a fork."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis
from sqlalchemy.engine import Engine

from teledispatch import clock
from teledispatch.config import Settings, settings
from teledispatch.db.engine import get_engine
from teledispatch.db.migrate import ensure_schema
from teledispatch.worker.circuit import Circuit
from teledispatch.worker.ratelimit import RateLimiter
from teledispatch.worker.transport import HttpxTransport, Transport

#: Sends a task by name: ``publish(name, args, queue, countdown)``. Celery in production,
#: a list in unit tests.
Publish = Callable[[str, list[Any], str, float], None]

#: Epoch seconds. The dispatch code reads the time only through ``Context.clock``, so tests
#: can move it (past a backoff) instead of sleeping.
Clock = Callable[[], float]


@dataclass
class Context:
    settings: Settings
    engine: Engine
    redis: redis.Redis[bytes]
    transport: Transport
    publish: Publish
    clock: Clock = time.time
    _limiter: RateLimiter | None = None
    _circuit: Circuit | None = None

    @property
    def limiter(self) -> RateLimiter:
        """Built on first use: its Lua scripts are registered with this context's Redis."""
        if self._limiter is None:
            self._limiter = RateLimiter(self.redis)
        return self._limiter

    @property
    def circuit(self) -> Circuit:
        """Built on first use, like :attr:`limiter`."""
        if self._circuit is None:
            self._circuit = Circuit(self.redis)
        return self._circuit


_ctx: Context | None = None
_pid = 0


def build(publish: Publish, cfg: Settings | None = None) -> Context:
    cfg = cfg or settings()
    engine = get_engine(cfg.database_url)
    ensure_schema(cfg.database_url)
    return Context(
        settings=cfg,
        engine=engine,
        redis=redis.Redis.from_url(cfg.redis_url, socket_timeout=10, socket_connect_timeout=5),
        transport=HttpxTransport(),
        publish=publish,
        # Integration tests only: a clock they move (teledispatch/clock.py), so quiet hours
        # can be crossed without waiting for them. Production reads the system clock.
        clock=clock.now if clock.is_moved() else time.time,
    )


def current(publish: Publish) -> Context:
    global _ctx, _pid
    if _ctx is None or _pid != os.getpid():
        _ctx = build(publish)
        _pid = os.getpid()
    return _ctx
