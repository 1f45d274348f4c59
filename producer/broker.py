"""Publishing to the workers without importing them.

The producer only needs task *names* and queues; it talks to the broker through a bare Celery
app so that an app embedding the producer never loads worker code, adapters or credentials.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from celery import Celery

ACCEPT_TASK = "jobs.accept"
ACCEPT_QUEUE = "accept"
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


def publish(
    broker_url: str, name: str, args: list[Any], *, queue: str, argsrepr: str | None = None
) -> None:
    publisher(broker_url).send_task(
        name, args=args, queue=queue, argsrepr=argsrepr, ignore_result=True
    )
