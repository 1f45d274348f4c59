"""Waking the workers without importing them.

The producer only needs task *names* and queues; it talks to the broker through a bare Celery
app so that an app embedding the producer never loads worker code, adapters or credentials.

The broker carries no job data: a job's rows are in the database before anyone is woken, so
losing Redis (restart, ``FLUSHALL``) loses only wake-ups, which the periodic sweep re-issues.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Any

import redis
from celery import Celery

from teledispatch.config import AccountConfig

#: Sends a task by name: ``send(name, args, queue, countdown)``.
Send = Callable[[str, list[Any], str, float], None]

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
    client: redis.Redis[bytes], send: Send, account: AccountConfig, delay_s: float | None = None
) -> bool:
    """Schedule one dispatch of ``account`` unless one is already scheduled; True if it was.

    Every stored part, every sweep and every full batch wants a dispatcher to run. A short-lived
    key per account (``SET NX PX``) turns a burst of such wishes into one task; its lifetime is
    the account's linger, so single-recipient jobs that arrive within it share one request.
    """
    delay = account.linger_ms / 1000 if delay_s is None else delay_s
    window_ms = max(int(delay * 1000), 50)
    # A wake for now has a key of its own: a pending lingering wake (an OTP's) must not hold
    # back a full batch that needs no linger.
    key = kick_key(account.name) if delay > 0 else kick_key(account.name) + ":now"
    if not client.set(key, b"1", nx=True, px=window_ms):
        return False
    send(dispatch_task(account.channel), [account.name], channel_queue(account.channel), delay)
    return True
