"""Per-recipient caps through the dispatch path (fakeredis, SQLite, a mock provider): the first
message to a number is sent and the next waits for the window; a batch that does not leave
(given back, parked again at the departure gate) does not count its own stamps against itself
when it is tried again, and the cap still holds at the provider."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from teledispatch.db import messages as repo
from teledispatch.producer import submit as enqueue_mod
from teledispatch.producer.lookup import job_status
from teledispatch.producer.submit import enqueue_stream
from teledispatch.worker.context import Context
from teledispatch.worker.dispatch import dispatch
from teledispatch.worker.dispatch import send as send_mod
from teledispatch.worker.ratelimit.booking import Booking
from teledispatch.worker.testing import FakeClock, MockTransport
from tests.support import make_settings

PHONE = "+8613800130000"
WIRE = "8613800130000"  # as NXCloud is sent it


@pytest.fixture(autouse=True)
def no_wake(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(enqueue_mod, "wake", lambda cfg, account, delay: None)


def sent_phones(ctx: Context) -> list[str]:
    """Every recipient the provider was sent, one per message, in order."""
    assert isinstance(ctx.transport, MockTransport)
    phones: list[str] = []
    for request in ctx.transport.requests:
        phones += [item["phone"] for item in json.loads(request.body)["items"]]
    return phones


def capped(ctx: Context, count: int = 1) -> FakeClock:
    ctx.settings = make_settings(ctx.settings.database_url, recipient_caps=[[count, "60s"]])
    # A second ahead of the real clock the rows are written on: what is enqueued is due.
    ctx.clock = clock = FakeClock(time.time() + 1.0)
    return clock


def enqueue(ctx: Context, n: int) -> str:
    rows = [{"phone": PHONE, "content": f"m{k}"} for k in range(n)]
    return enqueue_stream("nx", rows, allow_duplicates=True, cfg=ctx.settings).job_id


def counts(ctx: Context, job_id: str) -> dict[str, int]:
    return dict(job_status(job_id, cfg=ctx.settings).counts)


def gate_refuses_once(ctx: Context, monkeypatch: pytest.MonkeyPatch, wait_s: float) -> None:
    """The account's departure window is full once, for ``wait_s``."""
    real = ctx.limiter.try_depart
    calls = {"n": 0}

    def try_depart(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        return wait_s if calls["n"] == 1 else real(*args, **kwargs)

    monkeypatch.setattr(ctx.limiter, "try_depart", try_depart)


def test_two_to_one_number_the_first_is_sent_the_second_deferred(ctx: Context) -> None:
    clock = capped(ctx)
    job = enqueue(ctx, 2)
    dispatch(ctx, "nx")
    assert counts(ctx, job) == {"sent": 1, "deferred": 1}
    clock.advance(30.0)
    dispatch(ctx, "nx")
    assert counts(ctx, job) == {"sent": 1, "deferred": 1}
    assert sent_phones(ctx) == [WIRE]


def test_a_batch_given_back_at_the_gate_is_sent_when_tried_again(
    ctx: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reported case: the first message's batch is given back (its departure window full
    beyond the re-park bound), the second deferred by the cap. Tried again, the first must not
    be deferred by its own reservation's stamp."""
    clock = capped(ctx)
    gate_refuses_once(ctx, monkeypatch, send_mod.REPARK_MAX_S + 1.0)
    job = enqueue(ctx, 2)
    dispatch(ctx, "nx")
    assert counts(ctx, job) == {"queued": 1, "deferred": 1} and sent_phones(ctx) == []
    clock.advance(0.1)
    dispatch(ctx, "nx")
    assert counts(ctx, job) == {"sent": 1, "deferred": 1}
    assert sent_phones(ctx) == [WIRE]


def test_a_single_given_back_for_a_lost_lease_is_sent_when_tried_again(
    ctx: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = capped(ctx)
    real = repo.mark_departing
    calls = {"n": 0}

    def mark_departing(*args: Any, **kwargs: Any) -> bool:
        calls["n"] += 1
        return False if calls["n"] == 1 else real(*args, **kwargs)

    monkeypatch.setattr(repo, "mark_departing", mark_departing)
    job = enqueue(ctx, 1)
    dispatch(ctx, "nx")
    assert counts(ctx, job) == {"queued": 1} and sent_phones(ctx) == []
    clock.advance(0.1)
    dispatch(ctx, "nx")
    assert counts(ctx, job) == {"sent": 1} and sent_phones(ctx) == [WIRE]


def test_a_batch_parked_again_at_the_gate_is_charged_once(
    ctx: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Parked again at the departure gate, the batch comes back with a later slot; its
    departure must replace the stamp of the slot it reserved, not leave it behind as a second
    send to the number (cap 2: the number's next message goes, the one after waits)."""
    clock = capped(ctx, count=2)
    gate_refuses_once(ctx, monkeypatch, 0.5)
    job = enqueue(ctx, 1)
    dispatch(ctx, "nx")
    assert counts(ctx, job) == {"sending": 1} and sent_phones(ctx) == []
    # Its slot comes: the booking is due now (the test moves the slot, not the clock).
    key = f"{ctx.limiter.keys(ctx.settings.account('nx')).base}:parked"
    [(raw, _)] = ctx.redis.zrange(key, 0, -1, withscores=True)
    booking = Booking.decode(raw)
    assert booking.stamp_at is not None and booking.stamp_at < booking.send_at
    ctx.redis.zrem(key, raw)
    now = ctx.limiter.server_time()
    due = Booking(booking.token, booking.group_key, now, booking.slot, booking.stamp_at)
    ctx.redis.zadd(key, {due.encode(): 0})
    dispatch(ctx, "nx")
    assert counts(ctx, job) == {"sent": 1} and sent_phones(ctx) == [WIRE]
    clock.advance(1.0)
    second = enqueue(ctx, 1)
    dispatch(ctx, "nx")
    assert counts(ctx, second) == {"sent": 1}
    clock.advance(1.0)
    third = enqueue(ctx, 1)
    dispatch(ctx, "nx")
    assert counts(ctx, third) == {"deferred": 1}
    assert sent_phones(ctx) == [WIRE, WIRE]
