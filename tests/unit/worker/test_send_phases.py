"""A failure of our own is judged by its phase, not its class: before the request may have
started to be written nothing left, so the batch is retried as not sent (never ``unknown``,
which for channels without a status query ends ``unreconciled``); after, it may have left."""

from __future__ import annotations

from typing import Any

import pytest
import redis
import sqlalchemy as sa

from teledispatch.channels.base import HttpRequest
from teledispatch.channels.registry import adapter_for
from teledispatch.db.tables import batches_table
from teledispatch.errors import InternalError
from teledispatch.producer import submit as enqueue_mod
from teledispatch.producer.lookup import job_status, lookup
from teledispatch.producer.submit import enqueue_stream
from teledispatch.worker.context import Context
from teledispatch.worker.dispatch import dispatch
from teledispatch.worker.testing import FakeClock, MockTransport
from tests.support import make_settings

PHONES = [{"phone": f"861380013{i:04d}"} for i in range(3)]


@pytest.fixture(autouse=True)
def no_wake(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(enqueue_mod, "wake", lambda cfg, account, delay: None)


def requests_of(ctx: Context) -> list[HttpRequest]:
    assert isinstance(ctx.transport, MockTransport)
    return ctx.transport.requests


def batch_rows(ctx: Context) -> int:
    with ctx.engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(batches_table)).scalar_one())


def test_internal_error_may_have_been_sent_only_by_phase() -> None:
    before = InternalError("boom", may_have_been_sent=False)
    after = InternalError("boom", may_have_been_sent=True)
    assert (before.may_have_been_sent, before.retryable, before.code) == (False, True, "internal")
    assert (after.may_have_been_sent, after.retryable) == (True, False)


def test_a_request_that_cannot_be_built_is_retried_as_not_sent_then_failed(
    ctx: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A ValueError from ``build_request`` (a bad payload, a signing bug): every attempt
    counts as with a refused connection, and the messages end ``failed``, never ``unknown``."""

    def bad_payload(*args: Any) -> HttpRequest:
        raise ValueError("template parameters are not a JSON object")

    monkeypatch.setattr(type(adapter_for("nxcloud.sms")), "build_request", bad_payload)
    ctx.settings = make_settings(ctx.settings.database_url, max_attempts=3)
    job = enqueue_stream("nx", PHONES, defaults={"content": "x"}, cfg=ctx.settings)
    ctx.clock = clock = FakeClock()
    first = dispatch(ctx, "nx")
    assert first.counts == {"queued": 3} and first.requests == 0
    row = lookup(phone="+8613800130000", cfg=ctx.settings)[0]
    assert (row.status, row.error_code, row.attempts) == ("queued", "internal", 1)
    for _ in range(2):
        clock.advance(60.0)  # past any backoff
        dispatch(ctx, "nx")
    assert job_status(job.job_id, cfg=ctx.settings).counts == {"failed": 3}
    row = lookup(phone="+8613800130000", cfg=ctx.settings)[0]
    assert row.error_code == "internal" and "after 3 attempts" in (row.error_text or "")
    assert requests_of(ctx) == [] and batch_rows(ctx) == 0


def test_a_redis_error_at_the_departure_gate_is_not_a_send(
    ctx: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The batch was marked departing, then the gate failed before anything was written: it is
    retried (and sent at the next attempt), not left ``unknown``."""
    ctx.settings = make_settings(ctx.settings.database_url, max_requests_per_second=1000)
    calls = {"n": 0}
    real_depart = ctx.limiter.try_depart

    def depart(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 1:
            raise redis.ConnectionError("Connection reset by peer")
        return real_depart(*args, **kwargs)

    monkeypatch.setattr(ctx.limiter, "try_depart", depart)
    job = enqueue_stream("nx", PHONES, defaults={"content": "x"}, cfg=ctx.settings)
    ctx.clock = clock = FakeClock()
    assert dispatch(ctx, "nx").counts == {"queued": 3}
    assert requests_of(ctx) == [] and batch_rows(ctx) == 0
    row = lookup(phone="+8613800130002", cfg=ctx.settings)[0]
    assert (row.status, row.error_code) == ("queued", "internal")
    clock.advance(60.0)
    assert dispatch(ctx, "nx").counts == {"sent": 3}
    assert job_status(job.job_id, cfg=ctx.settings).counts == {"sent": 3}


def test_a_failure_after_the_request_left_may_have_been_sent(
    ctx: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once the request was written, an error of ours (here: a bug reading the answer) cannot
    say whether the provider acted: the messages are ambiguous, reconciled rather than resent."""

    def parse_bug(*args: Any) -> Any:
        raise KeyError("messageid")

    monkeypatch.setattr(type(adapter_for("nxcloud.sms")), "parse_response", parse_bug)
    job = enqueue_stream("nx", PHONES, defaults={"content": "x"}, cfg=ctx.settings)
    assert dispatch(ctx, "nx").requests == 1
    assert len(requests_of(ctx)) == 1
    assert job_status(job.job_id, cfg=ctx.settings).counts == {"unknown": 3}
    row = lookup(phone="+8613800130001", cfg=ctx.settings)[0]
    assert (row.error_code, row.error_text) == ("internal", "internal error: KeyError")
