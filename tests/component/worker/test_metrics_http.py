"""Worker metrics recorded by the real dispatch code with a stub transport (no Celery).

The registry is process-wide, so every assertion is on the change a test caused.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from teledispatch.producer import submit as enqueue_mod
from teledispatch.worker import metrics
from teledispatch.worker.context import Context
from teledispatch.worker.dispatch import dispatch

LABELS = {"channel": "nxcloud.sms", "account": "nx"}


@pytest.fixture(autouse=True)
def no_wake(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(enqueue_mod, "wake", lambda cfg, account, delay: None)


@pytest.fixture(autouse=True)
def recording_on() -> Iterator[None]:
    metrics._enabled = True
    yield
    metrics._enabled = True


def value(name: str, **labels: str) -> float:
    v = metrics.REGISTRY.get_sample_value(name, {**LABELS, **labels})
    return v or 0.0


class Snapshot:
    """Sample values now, to assert on differences later."""

    NAMES = (
        ("teledispatch_requests_total", "outcome", metrics.OUTCOMES),
        (
            "teledispatch_messages_total",
            "status",
            ("sent", "failed", "deferred", "queued", "unknown"),
        ),
    )
    PLAIN = (
        "teledispatch_batch_size_count",
        "teledispatch_batch_size_sum",
        "teledispatch_provider_latency_seconds_count",
        "teledispatch_throttled_total",
        "teledispatch_retries_total",
    )

    def __init__(self) -> None:
        self.before = self._read()

    def _read(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for name, label, values in self.NAMES:
            for v in values:
                out[f"{name}{{{v}}}"] = value(name, **{label: v})
        for name in self.PLAIN:
            out[name] = value(name)
        return out

    def delta(self) -> dict[str, float]:
        after = self._read()
        return {k: after[k] - self.before[k] for k in after if after[k] != self.before[k]}


def phones(n: int, start: int = 0) -> list[dict[str, str]]:
    return [{"phone": f"861380013{i:04d}"} for i in range(start, start + n)]


def drain(ctx: Context) -> None:
    for _ in range(100):
        if dispatch(ctx, "nx").claimed == 0:
            return


def test_serve_single_process_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a multiprocess directory the process's own registry is served (port 0: any)."""
    import urllib.request

    monkeypatch.setenv(metrics.PORT_ENV, "0")
    monkeypatch.delenv(metrics.MULTIPROC_ENV, raising=False)
    monkeypatch.delenv(metrics.MULTIPROC_ENV.lower(), raising=False)
    bound = metrics.serve()
    assert bound is not None
    host, port = bound
    with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    assert "# TYPE teledispatch_requests_total counter" in text
