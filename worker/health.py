"""Health that tells the truth: what a worker says while its database or Redis is down.

Two parts. :func:`problems` checks, from outside the pool, that the database and Redis this
worker uses answer; ``teledispatch worker-health`` exits non-zero naming what does not (the
compose healthcheck and the k8s readiness probe run it). :class:`OutageLog` is what a pool
process logs when a task meets an unreachable dependency: one WARNING when the outage starts,
one summary a minute while it lasts, one line when it ends, never a traceback per task (a
sweep every second made 1,058 lines in 12 s of a database outage).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

import redis
import sqlalchemy as sa
import sqlalchemy.exc

from teledispatch.config import Settings

log = logging.getLogger("teledispatch.health")
T = TypeVar("T")

#: How often an ongoing outage is summed up in the log.
SUMMARY_EVERY_S = 60.0
#: The probe's bounds: a health check must answer within the probe's timeout.
PROBE_TIMEOUT_S = 5.0

DATABASE = "database"
REDIS = "redis"


def dependency_of(exc: BaseException) -> str | None:
    """Which dependency ``exc`` says is unreachable, or None for any other error (a bug)."""
    if isinstance(exc, (redis.ConnectionError, redis.TimeoutError)):
        return REDIS
    if isinstance(exc, (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError)):
        return DATABASE
    if isinstance(exc, sqlalchemy.exc.DBAPIError) and exc.connection_invalidated:
        return DATABASE
    return None


class DependencyDown(Exception):
    """A task could not run: its database or Redis is unreachable (the text says which).

    Declared in the tasks' ``throws``, so Celery logs it in one line and Flower lists the
    task as failed, while :class:`OutageLog` says when the outage started and ended.
    """


@dataclass
class _Outage:
    since: float
    failures: int = 1
    summarised_at: float = 0.0
    last_error: str = ""


@dataclass
class OutageLog:
    """Per-process outage state; ``clock`` is passed so tests move time instead of sleeping."""

    clock: Callable[[], float] = time.monotonic
    logger: logging.Logger = log
    outages: dict[str, _Outage] = field(default_factory=dict)

    def failed(self, dependency: str, exc: BaseException) -> None:
        now, error = self.clock(), f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
        outage = self.outages.get(dependency)
        if outage is None:
            self.outages[dependency] = _Outage(since=now, summarised_at=now, last_error=error)
            self.logger.warning("%s unreachable: %s", dependency, error)
            return
        outage.failures += 1
        outage.last_error = error
        if now - outage.summarised_at >= SUMMARY_EVERY_S:
            outage.summarised_at = now
            self.logger.warning(
                "%s still unreachable after %.0f s (%d failed tasks); last error: %s",
                dependency,
                now - outage.since,
                outage.failures,
                error,
            )

    def recovered(self, dependency: str) -> None:
        outage = self.outages.pop(dependency, None)
        if outage is not None:
            self.logger.warning(
                "%s reachable again after %.0f s (%d failed tasks)",
                dependency,
                self.clock() - outage.since,
                outage.failures,
            )

    @property
    def down(self) -> list[str]:
        return sorted(self.outages)


def check_database(url: str) -> None:
    """Raises unless the database answers ``SELECT 1``."""
    args = {"connect_timeout": int(PROBE_TIMEOUT_S)} if url.startswith("postgresql") else {}
    engine = sa.create_engine(url, connect_args=args, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    finally:
        engine.dispose()


def check_redis(url: str) -> None:
    """Raises unless Redis answers PING."""
    client = redis.Redis.from_url(
        url, socket_timeout=PROBE_TIMEOUT_S, socket_connect_timeout=PROBE_TIMEOUT_S
    )
    try:
        client.ping()
    finally:
        client.close()


def check_broker(url: str) -> None:
    """Raises unless the Celery broker (when it is not the Redis above) accepts a connection."""
    from kombu.connection import Connection

    with Connection(url, connect_timeout=PROBE_TIMEOUT_S) as conn:  # type: ignore[no-untyped-call]
        conn.ensure_connection(max_retries=1)


def problems(cfg: Settings) -> list[str]:
    """One line per dependency of the worker that does not answer; empty: healthy."""
    found = []
    checks = [(DATABASE, check_database, cfg.database_url), (REDIS, check_redis, cfg.redis_url)]
    if cfg.broker_url and cfg.broker_url != cfg.redis_url:
        checks.append(("broker", check_broker, cfg.broker_url))
    for name, check, url in checks:
        try:
            check(url)
        except Exception as exc:  # any failure is the answer, reported, never raised
            first = str(exc).splitlines()[0][:200] if str(exc) else ""
            found.append(f"{name} unreachable: {type(exc).__name__}: {first}")
    return found


def guarded(outages: OutageLog, cfg: Callable[[], Settings], body: Callable[[], T]) -> T:
    """``body()``, with an unreachable database or Redis logged by ``outages`` and raised as
    :class:`DependencyDown`; after a success, open outages are probed and closed if over."""
    try:
        result = body()
    except Exception as exc:
        dependency = dependency_of(exc)
        if dependency is None:
            raise
        outages.failed(dependency, exc)
        raise DependencyDown(f"{dependency} unreachable (see the worker log)") from None
    for dependency in outages.down:
        check = check_database if dependency == DATABASE else check_redis
        settings = cfg()
        try:
            check(settings.database_url if dependency == DATABASE else settings.redis_url)
        except Exception as exc:  # still down: counted, not raised (the task itself worked)
            outages.failed(dependency, exc)
        else:
            outages.recovered(dependency)
    return result


class QuietTaskLogs(logging.Filter):
    """Drops Celery's INFO lines ("sending due task", "received", "succeeded", "raised
    expected") for the named tasks: an idle worker runs the sweep every second and the receipt
    poll every few, and must be quiet at INFO (what they do, they log themselves)."""

    def __init__(self, names: frozenset[str]) -> None:
        super().__init__()
        self.names = names

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno > logging.INFO:
            return True
        args = record.args
        if isinstance(args, dict):  # the worker's lines: the task name under "name"
            return args.get("name") not in self.names
        # beat's "Sending due task %s (%s)": the task name among the arguments
        return not (isinstance(args, tuple) and any(a in self.names for a in args))
