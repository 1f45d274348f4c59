"""Worker metrics exist, at zero, for every configured account before the first request."""

from __future__ import annotations

from teledispatch.worker import metrics
from tests.support import make_settings


def test_every_series_of_every_account_is_zero_before_the_first_request() -> None:
    # A name no other test sends on: its series can only come from ``preset``.
    account = make_settings("sqlite://").account("nx").model_copy(update={"name": "preset-only"})
    metrics.preset([account])
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in metrics.REGISTRY.collect()
        for s in family.samples
        if s.labels.get("account") == "preset-only"
    }
    base = (("account", "preset-only"), ("channel", account.channel))
    for outcome in metrics.OUTCOMES:
        key = ("teledispatch_requests_total", tuple(sorted((*base, ("outcome", outcome)))))
        assert key in samples, outcome
    for status in metrics.MESSAGE_STATUSES:
        key = ("teledispatch_messages_total", tuple(sorted((*base, ("status", status)))))
        assert key in samples, status
    for name in (
        "teledispatch_throttled_total",
        "teledispatch_retries_total",
        "teledispatch_batch_size_count",
        "teledispatch_provider_latency_seconds_count",
    ):
        assert samples[(name, base)] == 0, name
