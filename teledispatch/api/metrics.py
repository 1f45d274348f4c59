"""``/metrics``: Prometheus gauges read from the database at scrape time.

The database, not a counter in some process, is the source of truth: every API replica
reports the same numbers, and a restart loses nothing.
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Depends, Response

from teledispatch.api.deps import State, require_key
from teledispatch.config import Settings
from teledispatch.db import events as events_db
from teledispatch.db.engine import get_engine
from teledispatch.db.messages import active_backlog

router = APIRouter(include_in_schema=False)


def collect_metrics(cfg: Settings, now: float | None = None) -> list[Any]:
    """The gauges, from index ranges over the backlog (``active_backlog``): a scrape costs
    what the backlog does, not what the table's history does."""
    from prometheus_client.core import GaugeMetricFamily

    now = time.time() if now is None else now
    accounts = sorted((a.channel, a.name) for a in cfg.accounts.values())
    found = active_backlog(get_engine(cfg.database_url), accounts, now)
    messages = GaugeMetricFamily(
        "teledispatch_messages",
        "Messages waiting or in flight (queued, deferred, sending, unknown) by channel, "
        "account and status; outcomes are the worker's teledispatch_messages_total",
        labels=["channel", "account", "status"],
    )
    for channel, account, status, n in found.counts:
        messages.add_metric([channel, account, status], float(n))
    age = GaugeMetricFamily(
        "teledispatch_oldest_due_message_age_seconds",
        "Seconds the oldest due, unclaimed message of an account has waited (0: none waiting)",
        labels=["channel", "account"],
    )
    # Every configured account gets a series, so "absent" never hides "stuck".
    ages: dict[tuple[str, str], float] = {(a.channel, a.name): 0.0 for a in cfg.accounts.values()}
    for channel, account, due_at in found.oldest_due:
        ages[(channel, account)] = max(0.0, now - due_at)
    for (channel, account), seconds in sorted(ages.items()):
        age.add_metric([channel, account], seconds)
    return [messages, age, *_webhook_metrics(cfg, now)]


def _webhook_metrics(cfg: Settings, now: float) -> list[Any]:
    """Webhook events waiting (``pending``) and dead-lettered (``dead``, the DLQ) per account,
    and how long the oldest pending one has waited: the webhook lag."""
    from prometheus_client.core import GaugeMetricFamily

    events = GaugeMetricFamily(
        "teledispatch_webhook_events",
        "Webhook events not delivered, by account and state: pending (to be POSTed) or dead "
        "(dead-lettered; `teledispatch webhooks replay` queues them again)",
        labels=["account", "state"],
    )
    lag = GaugeMetricFamily(
        "teledispatch_webhook_oldest_pending_age_seconds",
        "Seconds the oldest pending webhook event of an account has waited (0: none)",
        labels=["account"],
    )
    counts = {(a, st): 0 for a in cfg.accounts for st in (events_db.PENDING, events_db.DEAD)}
    oldest = {a: 0.0 for a in cfg.accounts}
    for account, state, n, first in events_db.backlog(get_engine(cfg.database_url)):
        counts[(str(account), str(state))] = int(n)
        if state == events_db.PENDING and first is not None:
            oldest[str(account)] = max(0.0, now - float(first))
    for (account, state), n in sorted(counts.items()):
        events.add_metric([account, state], float(n))
    for account, seconds in sorted(oldest.items()):
        lag.add_metric([account], seconds)
    return [events, lag]


def render_metrics(cfg: Settings) -> tuple[bytes, str]:
    """The Prometheus text exposition of :func:`collect_metrics`."""
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

    class _Collector:
        def collect(self) -> list[Any]:
            return collect_metrics(cfg)

    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector())
    return generate_latest(registry), CONTENT_TYPE_LATEST


@router.get("/metrics", dependencies=[Depends(require_key)])
def metrics(state: State) -> Response:
    body, content_type = render_metrics(state.cfg())
    return Response(content=body, media_type=content_type)
