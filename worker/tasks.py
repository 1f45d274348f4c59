"""Thin Celery tasks: each one unpacks its arguments and calls one domain function.

Task arguments carry account names only: never credentials (adapters read those from config
inside the worker) and never recipients (they are in the database).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

from teledispatch import retention
from teledispatch.channels.registry import CHANNEL_IDS as CHANNELS
from teledispatch.config import settings
from teledispatch.wakeups import SWEEP_TASK, dispatch_task
from teledispatch.worker import health, task_results
from teledispatch.worker.app import (
    PURGE_TASK,
    RECEIPTS_TASK,
    WEBHOOKS_DELIVER_TASK,
    WEBHOOKS_DRAIN_TASK,
    WEBHOOKS_QUEUE,
    app,
)
from teledispatch.worker.context import Context, current
from teledispatch.worker.dispatch import dispatch
from teledispatch.worker.receipts import poll_receipts
from teledispatch.worker.sweep import sweep
from teledispatch.worker.webhooks import client as webhook_client
from teledispatch.worker.webhooks import drain as webhooks

log = logging.getLogger("teledispatch.tasks")
T = TypeVar("T")
#: This pool process's view of its database and Redis (``worker.health``).
OUTAGES = health.OutageLog()


def _publish(name: str, args: list[Any], queue: str, countdown: float) -> None:
    app.send_task(name, args=args, queue=queue, countdown=countdown or None)


def ctx() -> Context:
    return current(_publish)


def _guarded(body: Callable[[], T]) -> T:
    return health.guarded(OUTAGES, settings, body)


def _dispatch_task(channel: str) -> None:
    def run(*args: Any, **kwargs: Any) -> dict[str, Any]:
        return _guarded(lambda: _run_dispatch(channel, args, kwargs))

    run.__name__ = run.__qualname__ = "dispatch_" + channel.replace(".", "_")
    throws = (task_results.RequestsFailed, health.DependencyDown)
    app.task(name=dispatch_task(channel), throws=throws)(run)


def _run_dispatch(channel: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    # Anyone with broker access can publish anything under this name: refuse what is not a
    # dispatch of a configured account of this channel, with the reason as the task's result
    # (Flower shows it) and in the log, instead of failing the worker.
    account = args[0] if len(args) == 1 and not kwargs else None
    cfg = ctx().settings
    if not isinstance(account, str) or account not in cfg.accounts:
        reason = f"rejected: expected one configured account name, got {args!r:.100}"
        log.error("%s %s", dispatch_task(channel), reason)
        return {"rejected": reason}
    if cfg.accounts[account].channel != channel:
        reason = f"rejected: account {account!r} is not on channel {channel}"
        log.error("%s %s", dispatch_task(channel), reason)
        return {"rejected": reason}
    return task_results.finish(account, dispatch(ctx(), account))


for _channel in CHANNELS:
    _dispatch_task(_channel)


# Every second and almost always idle: no events (``QUIET_TASKS`` in ``worker.app`` keeps its
# task-sent event out too), so Flower's task list shows the dispatches, not the sweep; the
# dispatches it kicks show there with what they sent.
@app.task(name=SWEEP_TASK, send_events=False, throws=(health.DependencyDown,))
def sweep_task() -> dict[str, Any]:
    report = _guarded(lambda: sweep(ctx()))
    return {"reclaimed": report.reclaimed, "kicked": report.kicked}


@app.task(name=RECEIPTS_TASK, throws=(health.DependencyDown,))
def receipts_task() -> dict[str, Any]:
    report = _guarded(lambda: poll_receipts(ctx()))
    return {"asked": report.asked, "settled": report.settled, "pending": report.pending}


#: One purge run works this long at most; the next run (``TELEDISPATCH_PURGE_S``) goes on.
PURGE_BUDGET_S = 30.0


@app.task(name=PURGE_TASK, throws=(health.DependencyDown,))
def purge_task() -> dict[str, Any]:
    """Finished jobs past their account's ``retention_days``, in 1,000-row transactions."""
    c = ctx()
    start = c.clock()
    cutoffs = retention.account_cutoffs(c.settings, start)
    stop = lambda: c.clock() - start > PURGE_BUDGET_S  # noqa: E731
    pace = retention.Pace.of(c.engine)
    report = _guarded(lambda: retention.purge(c.engine, cutoffs, stop=stop, pace=pace))
    return {"jobs": len(report.jobs), "messages": report.messages, "stopped": report.stopped}


@app.task(name=WEBHOOKS_DRAIN_TASK)
def webhooks_drain_task() -> dict[str, Any]:
    """Queue one delivery task per endpoint with due events (arguments: endpoint keys, a
    hash: never a URL, which may hold a token, nor a secret)."""
    c = ctx()
    endpoints = webhooks.due(c.redis, c.engine, c.clock())
    for endpoint in endpoints:
        c.publish(WEBHOOKS_DELIVER_TASK, [endpoint], WEBHOOKS_QUEUE, 0)
    return {"endpoints": len(endpoints)}


@app.task(name=WEBHOOKS_DELIVER_TASK)
def webhooks_deliver_task(endpoint: str) -> dict[str, Any]:
    c = ctx()
    hooks = c.settings.webhooks
    client = webhook_client.shared(hooks.timeout_s, hooks.max_response_bytes)
    report = webhooks.deliver_locked(
        c.redis, c.engine, c.settings, str(endpoint), clock=c.clock, post=client.post
    )
    if report is None:
        return {"busy": True}
    return {"delivered": report.delivered, "retried": report.retried}
