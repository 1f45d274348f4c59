"""The account's circuit: opened by a run of unwell failures, one probe at growing intervals,
closed by a success; and while it is open, messages wait and spend no attempt."""

from __future__ import annotations

import logging
from typing import Any

import fakeredis
import pytest
from prometheus_client import generate_latest

from teledispatch import circuits
from teledispatch.channels.base import HttpRequest
from teledispatch.config import AccountConfig
from teledispatch.errors import (
    AmbiguousError,
    NotSentError,
    RejectedError,
    RetryableProviderError,
    ThrottledError,
)
from teledispatch.producer import submit as enqueue_mod
from teledispatch.producer.lookup import job_status, lookup
from teledispatch.producer.submit import enqueue_stream
from teledispatch.worker import metrics
from teledispatch.worker.circuit import Circuit
from teledispatch.worker.context import Context
from teledispatch.worker.dispatch import dispatch
from teledispatch.worker.testing import FakeClock, MockTransport
from teledispatch.worker.transport import HttpResponse
from tests.support import make_settings, nx_ok

T0 = 1_800_000_000.0
LEASE_S = 20.0
DOWN = RetryableProviderError("busy", code="503")


def account(**kw: Any) -> AccountConfig:
    return make_settings("sqlite://", **{"circuit_failures": 3, **kw}).account("nx")


@pytest.fixture
def circuit() -> Circuit:
    return Circuit(fakeredis.FakeRedis())


def test_only_provider_unwell_failures_count() -> None:
    assert NotSentError("refused").unwell and AmbiguousError("read timeout").unwell
    assert DOWN.unwell
    assert not ThrottledError("slow down").unwell and not RejectedError("auth").unwell


def test_opens_after_the_threshold_of_failures_in_a_row(circuit: Circuit) -> None:
    acct = account()
    assert not circuit.failure(acct, T0, DOWN).is_open
    assert not circuit.failure(acct, T0, DOWN).is_open
    trip = circuit.failure(acct, T0 + 0.5, DOWN)
    assert trip.is_open and trip.next_probe == pytest.approx(T0 + 1.5)
    assert circuit.gate(acct, T0 + 1.0, LEASE_S).wait_s == pytest.approx(0.5)


def test_a_success_resets_the_run(circuit: Circuit) -> None:
    acct = account()
    for _ in range(2):
        circuit.failure(acct, T0, DOWN)
    assert circuit.success(acct) is False  # it was closed: nothing to announce
    for _ in range(2):
        assert not circuit.failure(acct, T0, DOWN).is_open


def open_it(circuit: Circuit, acct: AccountConfig, now: float = T0) -> None:
    for _ in range(acct.circuit_failures):
        circuit.failure(acct, now, DOWN)


def test_one_probe_at_a_time_at_doubling_intervals_up_to_the_cap(circuit: Circuit) -> None:
    acct = account(circuit_probe_max_s=5.0)
    open_it(circuit, acct)
    now, waits = T0, []
    for _ in range(5):
        gate = circuit.gate(acct, now, LEASE_S)
        assert not gate.probe and gate.wait_s is not None
        now += gate.wait_s
        waits.append(gate.wait_s)
        assert circuit.gate(acct, now, LEASE_S).probe
        assert circuit.gate(acct, now, LEASE_S).wait_s is not None  # the probe is in flight
        circuit.failure(acct, now, DOWN)  # the probe failed
    assert waits == pytest.approx([1.0, 2.0, 4.0, 5.0, 5.0])


def test_a_probe_success_closes_it(circuit: Circuit) -> None:
    acct = account()
    open_it(circuit, acct)
    assert circuit.gate(acct, T0 + 1.0, LEASE_S).probe
    assert circuit.success(acct) is True
    assert not circuit.gate(acct, T0, LEASE_S).probe
    assert circuit.gate(acct, T0, LEASE_S).wait_s is None


def test_a_lost_probe_is_retaken_after_its_lease(circuit: Circuit) -> None:
    acct = account()
    open_it(circuit, acct)
    assert circuit.gate(acct, T0 + 1.0, LEASE_S).probe
    assert circuit.gate(acct, T0 + 1.0 + LEASE_S - 1, LEASE_S).wait_s is not None
    assert circuit.gate(acct, T0 + 1.0 + LEASE_S, LEASE_S).probe


def test_an_unanswered_probe_opens_it_again_for_one_interval(circuit: Circuit) -> None:
    acct = account()
    open_it(circuit, acct)
    assert circuit.gate(acct, T0 + 1.0, LEASE_S).probe
    circuit.abandon(acct, T0 + 1.0)
    assert circuit.gate(acct, T0 + 1.5, LEASE_S).wait_s == pytest.approx(0.5)


def test_off_when_the_threshold_is_zero(circuit: Circuit) -> None:
    acct = account(circuit_failures=0)
    for _ in range(10):
        assert not circuit.failure(acct, T0, DOWN).is_open
    assert circuit.gate(acct, T0, LEASE_S).wait_s is None


def test_operators_see_why_since_when_and_the_next_probe(circuit: Circuit) -> None:
    client = fakeredis.FakeRedis()
    circuit, acct = Circuit(client), account()
    assert circuits.view(client, "nx").describe() is None
    open_it(circuit, acct)
    line = circuits.view(client, "nx").describe()
    assert line == (
        "paused: [503] busy since 2027-01-15T08:00:00Z, next probe at 2027-01-15T08:00:01Z"
    )
    circuit.gate(acct, T0 + 1, LEASE_S)
    assert metrics.REGISTRY.get_sample_value(
        "teledispatch_circuit_state", {"channel": "nxcloud.sms", "account": "nx"}
    ) == float(circuits.HALF_OPEN)
    exposition = generate_latest(metrics.REGISTRY)
    assert b"# HELP teledispatch_circuit_state" in exposition
    assert b"# TYPE teledispatch_circuit_state gauge" in exposition


# --- the dispatcher with a circuit ------------------------------------------------------------


@pytest.fixture
def quiet_producer(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(enqueue_mod, "wake", lambda cfg, account, delay: None)


def test_an_outage_spends_no_attempt_and_sends_only_probes(
    ctx: Context, quiet_producer: None, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "teledispatch.circuit")
    healthy = {"up": False}

    def provider(request: HttpRequest) -> HttpResponse:
        return nx_ok(request) if healthy["up"] else HttpResponse(503, {}, b"busy")

    ctx.transport = transport = MockTransport(provider)
    ctx.settings = make_settings(
        ctx.settings.database_url, max_attempts=2, circuit_failures=2, max_batch=10
    )
    phones = [{"phone": f"861380013{i:04d}"} for i in range(50)]
    job = enqueue_stream("nx", phones, defaults={"content": "x"}, cfg=ctx.settings)
    ctx.clock = clock = FakeClock(T0)
    for _ in range(60):  # a minute of outage, a dispatch every second
        dispatch(ctx, "nx")
        clock.advance(1.0)
    st = job_status(job.job_id, cfg=ctx.settings)
    assert st.counts == {"queued": 50}
    # Two failures opened it; then probes at 1, 2, 4, 8, 16, 30 s: never a batch per second.
    assert len(transport.requests) <= 2 + 6
    assert max(r.attempts for r in lookup(phone="+8613800130000", cfg=ctx.settings)) <= 1
    healthy["up"] = True
    clock.advance(30.0)
    for _ in range(20):
        if dispatch(ctx, "nx").claimed == 0:
            break
    assert job_status(job.job_id, cfg=ctx.settings).counts == {"sent": 50}
    lines = [r.getMessage() for r in caplog.records]
    assert sum("opened" in m for m in lines) == 1 and sum("closed" in m for m in lines) == 1


def test_refused_connections_pause_the_account_too(ctx: Context, quiet_producer: None) -> None:
    def refused(request: HttpRequest) -> HttpResponse:
        raise NotSentError("ConnectError: connection refused", code="connect")

    ctx.transport = transport = MockTransport(refused)
    ctx.settings = make_settings(ctx.settings.database_url, max_attempts=1, circuit_failures=1)
    job = enqueue_stream(
        "nx", [{"phone": "8613800130000"}], defaults={"content": "x"}, cfg=ctx.settings
    )
    ctx.clock = clock = FakeClock(T0)
    for _ in range(10):
        dispatch(ctx, "nx")
        clock.advance(0.25)
    # One attempt allowed, yet nothing failed: after the first, the circuit held them back.
    assert job_status(job.job_id, cfg=ctx.settings).counts == {"queued": 1}
    assert len(transport.requests) <= 3  # the failure that opened it, then probes at 1 s, 2 s
