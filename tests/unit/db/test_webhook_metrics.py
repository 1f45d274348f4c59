"""``/metrics``' webhook gauges: events pending and dead-lettered per account, and the age of
the oldest pending one (the webhook lag), with a zero series for every configured account."""

from __future__ import annotations

from teledispatch.api.metrics import collect_metrics
from teledispatch.db import events as events_db
from teledispatch.worker.context import Context


def test_pending_dead_and_lag_per_account(ctx: Context) -> None:
    url = "https://app.example/hook"
    with ctx.engine.begin() as conn:
        for job, at in (("j1", 100.0), ("j2", 250.0), ("j3", 400.0)):
            events_db.insert_job_done(conn, job, "nx", url, at)
    first, *_ = [r.seq for r in events_db.head_batch(ctx.engine, events_db.endpoint_key(url), 10)]
    events_db.mark_failed(
        ctx.engine, events_db.endpoint_key(url), [first], 500.0, 500.0, "HTTP 410", dead=True
    )
    families = {f.name: f for f in collect_metrics(ctx.settings, now=1000.0)}
    events = {
        tuple(s.labels.values()): s.value for s in families["teledispatch_webhook_events"].samples
    }
    assert events == {("nx", "dead"): 1.0, ("nx", "pending"): 2.0}
    lag = families["teledispatch_webhook_oldest_pending_age_seconds"].samples
    assert [(s.labels["account"], s.value) for s in lag] == [("nx", 750.0)]


def test_every_account_has_zero_series_before_any_event(ctx: Context) -> None:
    families = {f.name: f for f in collect_metrics(ctx.settings, now=1000.0)}
    events = families["teledispatch_webhook_events"].samples
    assert sorted((s.labels["state"], s.value) for s in events) == [("dead", 0.0), ("pending", 0.0)]
    assert [
        s.value for s in families["teledispatch_webhook_oldest_pending_age_seconds"].samples
    ] == [0.0]
