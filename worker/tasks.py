"""Thin Celery tasks: each one unpacks its arguments and calls one domain function.

Task arguments carry account names only: never credentials (adapters read those from config
inside the worker) and never recipients (they are in the database).
"""

from __future__ import annotations

import logging
from typing import Any

from producer.broker import SWEEP_TASK, dispatch_task
from producer.config import CHANNELS
from worker.app import app
from worker.context import Context, current
from worker.dispatch import dispatch
from worker.sweep import sweep

log = logging.getLogger("teledispatch.tasks")


def _publish(name: str, args: list[Any], queue: str, countdown: float) -> None:
    app.send_task(name, args=args, queue=queue, countdown=countdown or None)


def ctx() -> Context:
    return current(_publish)


def _dispatch_task(channel: str) -> None:
    def run(account: str) -> dict[str, Any]:
        report = dispatch(ctx(), account)
        return {"claimed": report.claimed, "requests": report.requests, **report.counts}

    run.__name__ = run.__qualname__ = "dispatch_" + channel.replace(".", "_")
    app.task(name=dispatch_task(channel))(run)


for _channel in CHANNELS:
    _dispatch_task(_channel)


@app.task(name=SWEEP_TASK)
def sweep_task() -> dict[str, Any]:
    report = sweep(ctx())
    return {"reclaimed": report.reclaimed, "kicked": report.kicked}
