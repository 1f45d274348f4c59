"""``/metrics``' backlog: waiting and in-flight counts per configured account, the oldest due
message, and nothing counted from history (terminal rows)."""

from __future__ import annotations

import pytest

from teledispatch.api.metrics import collect_metrics
from teledispatch.db import messages as repo
from teledispatch.producer import submit as enqueue_mod
from teledispatch.producer.submit import enqueue_stream
from teledispatch.worker.context import Context
from teledispatch.worker.dispatch import dispatch


@pytest.fixture(autouse=True)
def no_wakes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(enqueue_mod, "wake", lambda cfg, account, delay: None)


def _phones(n: int, start: int = 0) -> list[dict[str, str]]:
    return [{"phone": f"861380013{i:04d}"} for i in range(start, start + n)]


def test_counts_the_backlog_per_account_and_never_history(ctx: Context) -> None:
    channel = ctx.settings.account("nx").channel
    enqueue_stream("nx", _phones(3), defaults={"content": "a"}, cfg=ctx.settings)
    dispatch(ctx, "nx")  # three sent: history, not backlog
    enqueue_stream("nx", _phones(4, 10), defaults={"content": "b"}, cfg=ctx.settings)
    claim = repo.claim(ctx.engine, "nx", 1, 60.0, ctx.clock())  # one in flight
    assert len(claim.messages) == 1
    now = ctx.clock() + 5
    found = repo.active_backlog(ctx.engine, [(channel, "nx"), (channel, "idle")], now)
    counts = {(a, s): n for _, a, s, n in found.counts}
    assert counts == {
        ("nx", "queued"): 3,
        ("nx", "deferred"): 0,
        ("nx", "unknown"): 0,
        ("nx", "sending"): 1,
        ("idle", "queued"): 0,
        ("idle", "deferred"): 0,
        ("idle", "unknown"): 0,
        ("idle", "sending"): 0,
    }
    (oldest,) = found.oldest_due
    assert oldest[:2] == (channel, "nx") and 0 < now - oldest[2] <= 60

    families = {f.name: f for f in collect_metrics(ctx.settings, now=now)}
    statuses = {s.labels["status"] for s in families["teledispatch_messages"].samples}
    assert statuses == {"queued", "deferred", "unknown", "sending"}
    (age,) = families["teledispatch_oldest_due_message_age_seconds"].samples
    assert age.value == pytest.approx(now - oldest[2])
