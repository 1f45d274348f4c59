"""The Celery app: reliability settings, one queue per channel, the sweep schedule.

Delivery settings follow from "nothing lost": a task is acknowledged only after it ran
(``acks_late``), is requeued if its process dies (``reject_on_worker_lost``), a process holds
one unstarted task at a time (prefetch 1), and Redis redelivers an unacknowledged task only
after ``visibility_timeout`` — longer than any task runs and longer than any countdown used.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

from celery import Celery
from celery.app.amqp import AMQP
from celery.signals import beat_init, worker_init, worker_process_init, worker_process_shutdown
from kombu.entity import Queue

from teledispatch.channels.registry import CHANNEL_IDS as CHANNELS
from teledispatch.config import settings, worker_timings
from teledispatch.db.engine import dispose_engines
from teledispatch.wakeups import MAINTENANCE_QUEUE, SWEEP_TASK, channel_queue

VISIBILITY_TIMEOUT_S = 3600
SWEEP_INTERVAL_S = worker_timings().sweep_s
#: USpeedo receipt polling (``worker.receipts``); its own task so a slow provider never
#: holds up the sweep.
RECEIPTS_TASK = "maintenance.receipts"
RECEIPTS_INTERVAL_S = worker_timings().receipts_s
#: Webhook delivery has its own queue: a slow receiver never holds up dispatch or the sweep.
WEBHOOKS_QUEUE = "webhooks"
WEBHOOKS_DRAIN_TASK = "webhooks.drain"
WEBHOOKS_DELIVER_TASK = "webhooks.deliver"
WEBHOOKS_INTERVAL_S = worker_timings().webhooks_s
#: Retention (``teledispatch.retention``): finished jobs past their account's
#: ``retention_days`` go, a bounded slice per run on the maintenance queue.
PURGE_TASK = "maintenance.purge"
PURGE_INTERVAL_S = worker_timings().purge_s
QUEUES = [MAINTENANCE_QUEUE, WEBHOOKS_QUEUE, *(channel_queue(c) for c in CHANNELS)]


#: Tasks that send no events at all (``send_events=False`` on the task keeps the worker's
#: events out; :class:`_QuietAMQP` the publisher's task-sent event): the every-second sweep
#: otherwise filled every other row of Flower's task list.
QUIET_TASKS = frozenset({SWEEP_TASK})


class _QuietAMQP(AMQP):  # type: ignore[misc]  # Celery ships no type hints
    """Celery's message factory, minus the task-sent event of :data:`QUIET_TASKS`.

    ``task_send_sent_event`` is global, and beat publishes the sweep through the same app as
    every dispatch, so the event is dropped per task name here.
    """

    def as_task_v2(self, task_id: str, name: str, *args: Any, **kwargs: Any) -> Any:
        message = super().as_task_v2(task_id, name, *args, **kwargs)
        return message._replace(sent_event=None) if name in QUIET_TASKS else message


def make_app() -> Celery:
    app = Celery(
        "teledispatch",
        broker=settings().celery_broker_url,
        include=["teledispatch.worker.tasks"],
        amqp=_QuietAMQP,
    )
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        broker_transport_options={"visibility_timeout": VISIBILITY_TIMEOUT_S},
        broker_connection_retry_on_startup=True,
        worker_send_task_events=True,
        task_send_sent_event=True,
        task_queues=[Queue(q) for q in QUEUES],
        task_default_queue=MAINTENANCE_QUEUE,
        worker_hijack_root_logger=False,
        beat_schedule={
            "sweep": {
                "task": SWEEP_TASK,
                "schedule": SWEEP_INTERVAL_S,
                "options": {"queue": MAINTENANCE_QUEUE, "expires": max(SWEEP_INTERVAL_S * 5, 5)},
            },
            "receipts": {
                "task": RECEIPTS_TASK,
                "schedule": RECEIPTS_INTERVAL_S,
                "options": {"queue": MAINTENANCE_QUEUE, "expires": max(RECEIPTS_INTERVAL_S, 5)},
            },
            "purge": {
                "task": PURGE_TASK,
                "schedule": PURGE_INTERVAL_S,
                "options": {"queue": MAINTENANCE_QUEUE, "expires": max(PURGE_INTERVAL_S, 5)},
            },
            "webhooks": {
                "task": WEBHOOKS_DRAIN_TASK,
                "schedule": WEBHOOKS_INTERVAL_S,
                "options": {"queue": WEBHOOKS_QUEUE, "expires": max(WEBHOOKS_INTERVAL_S * 5, 5)},
            },
        },
    )
    return app


app = make_app()


@beat_init.connect
@worker_init.connect
def _quiet_logs(**_: Any) -> None:
    # Before the pool forks, so every pool process inherits the filters; a standalone beat
    # (``teledispatch beat``) gets them too.
    from teledispatch.worker.health import QuietTaskLogs

    quiet = QuietTaskLogs(QUIET_TASKS | {RECEIPTS_TASK})
    for name in ("celery.app.trace", "celery.worker.strategy", "celery.beat"):
        logging.getLogger(name).addFilter(quiet)


@worker_process_init.connect
def _after_fork(**_: Any) -> None:
    # A forked pool process must not reuse the parent's database sockets.
    dispose_engines()
    # Its first task would open the pool's first connection and check the schema (a new
    # server backend, the dialect's first-connect queries) between a claim and its send:
    # done now, beside the pool's start. A thread, as Celery kills a process whose start
    # outlasts ``worker_proc_alive_timeout`` and the database may be slow to answer.
    threading.Thread(target=_warm_database, name="td-warm-db", daemon=True).start()


def _warm_database() -> None:
    from teledispatch.db.migrate import ensure_schema

    try:
        ensure_schema(settings().database_url)
    except Exception as exc:  # the first task meets it again, and says so
        logging.getLogger("teledispatch.worker").debug("database not warmed (%s)", exc)


@worker_init.connect
def _preload(**_: Any) -> None:
    """Import, once and before the pool forks, what every pool process otherwise imports on
    its first task: the database driver, the migration check and the HTTP client's imports
    and CA store, paid on the first message's latency (and four times over by a 4-process
    pool).
    Nothing here connects anywhere: a fork must not inherit sockets."""
    import sqlalchemy as sa

    from teledispatch.db.migrate import preload
    from teledispatch.worker import transport

    preload()  # the schema check's alembic and mako
    sa.engine.make_url(settings().database_url).get_dialect().import_dbapi()
    # The HTTP client's imports and CA store, else paid in each process's first send.
    transport.preload()


@worker_init.connect
def _serve_metrics(**_: Any) -> None:
    # The main process, before the pool forks: it serves the sum of every pool process's
    # metrics (``worker.metrics``); nothing happens unless a metrics port was configured.
    from teledispatch.worker import metrics

    metrics.serve()


@worker_process_shutdown.connect
def _metrics_process_dead(pid: int | None = None, **_: Any) -> None:
    from teledispatch.worker import metrics

    metrics.process_dead(pid or os.getpid())
