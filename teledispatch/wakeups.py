"""Waking the workers without importing them.

The producer only needs task *names* and queues; it talks to the broker through a bare Celery
app so that an app embedding the producer never loads worker code, adapters or credentials.

The broker carries no job data: a job's rows are in the database before anyone is woken, so
losing Redis (restart, ``FLUSHALL``) loses only wake-ups, which the periodic sweep re-issues.

"Wake a dispatcher for an account" is one concept with two callers (the producer after storing
a part, the worker after a full claim or a wait) and three short-lived Redis keys, each a
``SET NX PX`` that turns a burst of wishes into one task:

* ``td:kick:{account}`` — a lingering wake is scheduled (:func:`kick` with a delay); lives
  for the delay, so single-recipient jobs within it share one request;
* ``td:kick:{account}:now`` — a wake for now is scheduled (:func:`kick` with no delay);
  separate, so a pending lingering wake never holds back a full batch; lives 50 ms;
* ``td:follow:{account}`` — a follow-up dispatch is published and has not started yet
  (:func:`follow_up` with ``once``; cleared by :func:`follow_up_started`); lives at most
  ``FOLLOW_PENDING_MS``;
* ``td:inflight:{account}`` — the account's requests in flight (a sorted set, one member per
  request, scored by when it is over at the latest): a single recipient waits only while one
  is (:func:`kick` with ``linger_if_busy``), as Nagle's algorithm batches only behind
  unacknowledged data. An idle account sends it at once; under load the requests in flight
  are what makes singles share the next one;
* ``td:kick:{account}:after`` — a single is waiting for a request in flight to end: the end of
  that request (:func:`flight_ended`) wakes the account at once, as Nagle sends when the
  acknowledgement comes; the linger is only the fallback (a sender that died).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from functools import lru_cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # loaded when a wake-up is published, not by every importer (the CLI)
    import redis
    from celery import Celery

from teledispatch.config import AccountConfig

#: Sends a task by name: ``send(name, args, queue, countdown)``.
Send = Callable[[str, list[Any], str, float], None]

log = logging.getLogger("teledispatch.wakeups")

SWEEP_TASK = "maintenance.sweep"
MAINTENANCE_QUEUE = "maintenance"


def dispatch_task(channel: str) -> str:
    """``dispatch.nxcloud.sms``: operators read task names in Flower as the domain."""
    return f"dispatch.{channel}"


def channel_queue(channel: str) -> str:
    """One queue per channel so each can be watched and scaled on its own."""
    return channel


@lru_cache(maxsize=4)
def publisher(broker_url: str) -> Celery:
    from celery import Celery

    app = Celery("teledispatch-producer", broker=broker_url)
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        broker_connection_retry_on_startup=True,
        broker_transport_options={"visibility_timeout": 3600},
    )
    return app


def sender(broker_url: str) -> Send:
    app = publisher(broker_url)

    def send(name: str, args: list[Any], queue: str, countdown: float) -> None:
        app.send_task(name, args=args, queue=queue, countdown=countdown or None)

    return send


def kick_key(account: str) -> str:
    return f"td:kick:{account}"


def kick(
    client: redis.Redis[bytes],
    send: Send,
    account: AccountConfig,
    delay_s: float | None = None,
    *,
    linger_if_busy: bool = False,
) -> bool:
    """Schedule one dispatch of ``account`` unless one is already scheduled; True if it was.

    Every stored part, every sweep and every full batch wants a dispatcher to run. A short-lived
    key per account (``SET NX PX``) turns a burst of such wishes into one task; its lifetime is
    the account's linger, so single-recipient jobs that arrive within it share one request.
    ``linger_if_busy``: ``delay_s`` is a linger, waited only while a request of the account is
    in flight (else the wake is for now).
    """
    delay = account.linger_ms / 1000 if delay_s is None else delay_s
    if linger_if_busy and delay > 0:
        if not in_flight(client, account):
            delay = 0.0
        else:
            # The request in flight wakes the account when it ends; the linger is a fallback.
            client.set(after_key(account.name), b"1", px=max(int(delay * 1000), 50))
    window_ms = max(int(delay * 1000), 50)
    # A wake for now has a key of its own: a pending lingering wake (an OTP's) must not hold
    # back a full batch that needs no linger.
    key = kick_key(account.name) if delay > 0 else kick_key(account.name) + ":now"
    if not client.set(key, b"1", nx=True, px=window_ms):
        return False
    send(dispatch_task(account.channel), [account.name], channel_queue(account.channel), delay)
    return True


#: How long an unstarted follow-up keeps others from being published if its task never starts
#: (lost with a worker); the sweep wakes accounts with due messages every second meanwhile.
FOLLOW_PENDING_MS = 10_000


def follow_key(account: str) -> str:
    return f"td:follow:{account}"


def follow_up(
    client: redis.Redis[bytes], send: Send, account: AccountConfig, *, once: bool = False
) -> bool:
    """A full batch suggests more is waiting: start the next claim now, in another process.

    With ``once``, only if no follow-up of this account is already waiting to start (a
    short Redis key, cleared by :func:`follow_up_started`). A task that sends one claim
    publishes at most one follow-up and consumes one, so the queue stays short by itself; a
    task that keeps claiming publishes at its first claim and again when its time is up, and
    without this gate the queue would grow by one task per task for as long as a backlog
    lasted, each of them an empty claim at the end and a wait for other accounts' wake-ups.
    True if published."""
    if once and not client.set(follow_key(account.name), b"1", nx=True, px=FOLLOW_PENDING_MS):
        return False
    send(dispatch_task(account.channel), [account.name], channel_queue(account.channel), 0)
    return True


def follow_up_started(client: redis.Redis[bytes], account: AccountConfig) -> None:
    """A dispatch of ``account`` is running: the next full claim may recruit another."""
    client.delete(follow_key(account.name))


def after_key(account: str) -> str:
    return f"td:kick:{account}:after"


def inflight_key(account: str) -> str:
    return f"td:inflight:{account}"


def in_flight(client: redis.Redis[bytes], account: AccountConfig) -> bool:
    """Whether a request of ``account`` is in flight (or waiting for its rate slot) now."""
    return int(client.zcount(inflight_key(account.name), time.time(), "+inf")) > 0


def flight_started(
    client: redis.Redis[bytes], account: AccountConfig, member: str, until: float
) -> None:
    """A request of ``account`` is under way until ``until`` (epoch s) at the latest. Best
    effort: a lost mark only makes a single wait no linger. Wall clock, as the producer
    reading it has no other; a worker that dies mid-request leaves a member that stops
    counting at ``until`` and is dropped by a later call."""
    import redis  # here, not at the top: the CLI imports this module without a Redis client

    key = inflight_key(account.name)
    try:
        pipe = client.pipeline(transaction=False)
        pipe.zadd(key, {member: until})
        pipe.zremrangebyscore(key, "-inf", time.time())
        pipe.pexpire(key, max(1, int((until - time.time()) * 1000)) + 1000)
        pipe.execute()
    except redis.RedisError as exc:
        log.debug("in-flight mark not written (%s)", type(exc).__name__)


def flight_ended(client: redis.Redis[bytes], account: AccountConfig, member: str) -> bool:
    """The request of ``member`` is over (sent, failed or given back); True if a single was
    waiting for it (then wake the account now: :func:`kick` with no delay)."""
    import redis  # as in flight_started

    try:
        pipe = client.pipeline(transaction=False)
        pipe.zrem(inflight_key(account.name), member)
        pipe.delete(after_key(account.name))
        _, waiting = pipe.execute()
    except redis.RedisError as exc:
        log.debug("in-flight mark not removed (%s)", type(exc).__name__)
        return False
    return int(waiting) == 1
