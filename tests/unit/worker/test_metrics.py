"""Worker metrics recorded by the real dispatch code with a stub transport (no Celery).

The registry is process-wide, so every assertion is on the change a test caused.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import pytest

from teledispatch.channels.base import HttpRequest
from teledispatch.errors import (
    AmbiguousError,
    DispatchError,
    MalformedResponseError,
    NotSentError,
    RejectedError,
    RetryableProviderError,
    ThrottledError,
)
from teledispatch.producer import submit as enqueue_mod
from teledispatch.producer.submit import enqueue_stream
from teledispatch.worker import metrics
from teledispatch.worker.context import Context
from teledispatch.worker.dispatch import dispatch
from teledispatch.worker.testing import FakeClock, MockTransport
from teledispatch.worker.transport import HttpResponse
from tests.support import make_settings

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


def test_successful_requests_count_once_each_with_their_sizes(ctx: Context) -> None:
    snap = Snapshot()
    enqueue_stream("nx", phones(250), defaults={"content": "hi"}, cfg=ctx.settings)
    drain(ctx)
    assert snap.delta() == {
        "teledispatch_requests_total{ok}": 2,
        "teledispatch_messages_total{sent}": 250,
        "teledispatch_batch_size_count": 2,
        "teledispatch_batch_size_sum": 250,
        "teledispatch_provider_latency_seconds_count": 2,
    }
    # 200 + 50 messages: one request in the 200 bucket, both in the 200 (cumulative) bucket
    assert value("teledispatch_batch_size_bucket", le="100.0") >= 1
    assert value("teledispatch_batch_size_bucket", le="200.0") >= 2


def test_retryable_then_ok_counts_the_retried_messages(ctx: Context) -> None:
    calls = {"n": 0}
    ok = ctx.transport.handler  # type: ignore[attr-defined]

    def first_busy(request: HttpRequest) -> HttpResponse:
        calls["n"] += 1
        return HttpResponse(503, {}, b"busy") if calls["n"] == 1 else ok(request)

    ctx.transport = MockTransport(first_busy)
    ctx.settings = make_settings(ctx.settings.database_url, backoff_base_s=0.001)
    snap = Snapshot()
    enqueue_stream("nx", phones(3), defaults={"content": "x"}, cfg=ctx.settings)
    ctx.clock = clock = FakeClock()
    dispatch(ctx, "nx")
    clock.advance(1.0)  # past the 1-2 ms backoff
    drain(ctx)
    assert snap.delta() == {
        "teledispatch_requests_total{retryable}": 1,
        "teledispatch_requests_total{ok}": 1,
        "teledispatch_messages_total{queued}": 3,
        "teledispatch_messages_total{sent}": 3,
        "teledispatch_batch_size_count": 2,
        "teledispatch_batch_size_sum": 6,
        "teledispatch_provider_latency_seconds_count": 2,
        "teledispatch_retries_total": 3,
    }


def test_throttled_request(ctx: Context) -> None:
    ctx.transport = MockTransport(lambda r: HttpResponse(429, {}, b""))
    snap = Snapshot()
    enqueue_stream("nx", phones(2), defaults={"content": "x"}, cfg=ctx.settings)
    dispatch(ctx, "nx")
    d = snap.delta()
    assert d["teledispatch_requests_total{throttled}"] == 1
    assert d["teledispatch_throttled_total"] == 1
    assert d["teledispatch_messages_total{queued}"] == 2
    assert "teledispatch_retries_total" not in d


@pytest.mark.parametrize(
    ("error", "outcome", "status"),
    [
        (NotSentError("refused"), "not_sent", "queued"),
        (AmbiguousError("read timeout"), "ambiguous", "unknown"),
    ],
)
def test_transport_failures_are_requests_with_latency(
    ctx: Context, error: DispatchError, outcome: str, status: str
) -> None:
    def fail(request: HttpRequest) -> HttpResponse:
        raise error

    ctx.transport = MockTransport(fail)
    snap = Snapshot()
    enqueue_stream("nx", phones(4), defaults={"content": "x"}, cfg=ctx.settings)
    dispatch(ctx, "nx")
    d = snap.delta()
    assert d[f"teledispatch_requests_total{{{outcome}}}"] == 1
    assert d[f"teledispatch_messages_total{{{status}}}"] == 4
    assert d["teledispatch_provider_latency_seconds_count"] == 1


def test_rejected_and_item_failures(ctx: Context) -> None:
    def half(request: HttpRequest) -> HttpResponse:
        items = json.loads(request.body)["items"]
        data = [
            {
                "phone": it["phone"],
                "messageid": it["sysMessageId"],
                "status": "Failure" if k % 2 else "Success",
                "message": "blacklisted" if k % 2 else "",
            }
            for k, it in enumerate(items)
        ]
        return HttpResponse(200, {}, json.dumps({"code": 0, "data": data}).encode())

    ctx.transport = MockTransport(half)
    snap = Snapshot()
    enqueue_stream("nx", phones(4), defaults={"content": "x"}, cfg=ctx.settings)
    drain(ctx)
    d = snap.delta()
    assert d["teledispatch_requests_total{ok}"] == 1
    assert d["teledispatch_messages_total{sent}"] == 2
    assert d["teledispatch_messages_total{failed}"] == 2

    ctx.transport = MockTransport(
        lambda r: HttpResponse(200, {}, b'{"code":1003,"message":"sign error"}')
    )
    snap = Snapshot()
    enqueue_stream("nx", phones(3, 10), defaults={"content": "x"}, cfg=ctx.settings)
    drain(ctx)
    d = snap.delta()
    assert d["teledispatch_requests_total{rejected}"] == 1
    assert d["teledispatch_messages_total{failed}"] == 3


@pytest.mark.parametrize(
    ("exc", "outcome"),
    [
        (None, "ok"),
        (RetryableProviderError("503"), "retryable"),
        (ThrottledError("13008"), "throttled"),
        (RejectedError("auth"), "rejected"),
        (AmbiguousError("timeout"), "ambiguous"),
        (MalformedResponseError("garbage"), "malformed"),
        (NotSentError("refused"), "not_sent"),
        (KeyError("adapter bug"), "malformed"),
    ],
)
def test_outcome_labels(exc: BaseException | None, outcome: str) -> None:
    assert metrics.outcome_of(exc) == outcome
    assert outcome in metrics.OUTCOMES


def test_a_failing_metric_never_fails_a_send(ctx: Context, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*_: Any) -> Any:
        raise OSError("value file gone")

    monkeypatch.setattr(metrics.REQUESTS, "labels", broken)
    monkeypatch.setattr(metrics.MESSAGES, "labels", broken)
    job = enqueue_stream("nx", phones(2), defaults={"content": "x"}, cfg=ctx.settings)
    drain(ctx)
    from teledispatch.producer.lookup import job_status

    assert job_status(job.job_id, cfg=ctx.settings).counts == {"sent": 2}
    assert metrics._enabled is False  # switched off after the first failure, logged once


def test_no_request_no_request_metric(ctx: Context) -> None:
    """Nothing claimed, nothing recorded: an idle dispatch costs no metric call."""
    snap = Snapshot()
    assert dispatch(ctx, "nx").claimed == 0
    assert snap.delta() == {}


def test_serve_without_port_does_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(metrics.PORT_ENV, raising=False)
    assert metrics.serve() is None


def test_clear_dir_removes_only_value_files(tmp_path: Any) -> None:
    (tmp_path / "counter_1.db").write_bytes(b"x")
    (tmp_path / "histogram_2.db").write_bytes(b"x")
    (tmp_path / "notes.txt").write_text("keep")
    assert metrics.clear_dir(tmp_path) == 2
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


def test_worker_verb_sets_the_multiprocess_env(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    from teledispatch.cli import main as cli

    for name in (metrics.MULTIPROC_ENV, metrics.PORT_ENV, metrics.HOST_ENV, metrics.DIR_ENV):
        monkeypatch.setenv(name, "")
    monkeypatch.setenv(metrics.DIR_ENV, str(tmp_path / "m"))
    seen: dict[str, Any] = {}

    class Execed(Exception):
        pass

    def fake_exec(file: str, argv: list[str]) -> None:
        seen["argv"] = argv
        seen["env"] = {k: os.environ.get(k) for k in (metrics.MULTIPROC_ENV, metrics.PORT_ENV)}
        seen["host"] = os.environ.get(metrics.HOST_ENV)
        raise Execed

    monkeypatch.setattr(os, "execvp", fake_exec)
    with pytest.raises(Execed):
        cli.main(["worker", "--metrics-port", "9187", "--metrics-host", "0.0.0.0"])
    assert seen["env"] == {metrics.MULTIPROC_ENV: str(tmp_path / "m"), metrics.PORT_ENV: "9187"}
    assert seen["host"] == "0.0.0.0"
    assert (tmp_path / "m").is_dir()
    assert "--metrics-port" not in seen["argv"]  # Celery never sees our option

    monkeypatch.setenv(metrics.DIR_ENV, "")
    with pytest.raises(Execed):
        cli.main(["worker", "--metrics-port", "9187"])
    fresh = seen["env"][metrics.MULTIPROC_ENV]
    assert fresh and os.path.isdir(fresh) and "teledispatch-metrics-" in fresh
    os.rmdir(fresh)
