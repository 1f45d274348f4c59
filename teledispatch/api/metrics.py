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
    return [messages, age]


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
