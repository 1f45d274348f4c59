"""Waits of a limited account hold no process: booked slots are parked in Redis and sent by
the dispatch that runs when they come; a full concurrency cap claims nothing."""

from __future__ import annotations

import time
from typing import Any

import pytest
import sqlalchemy as sa

from teledispatch.db import messages as repo
from teledispatch.db.tables import batches_table, messages_table
from teledispatch.producer.lookup import job_status
from teledispatch.producer.submit import enqueue_stream
from teledispatch.worker.context import Context
from teledispatch.worker.dispatch import dispatch, loop
from teledispatch.worker.dispatch.admit import Admission
from teledispatch.worker.ratelimit.booking import Booking
from tests.support import make_settings

Published = list[tuple[str, list[Any], str, float]]


def phones(n: int) -> list[dict[str, str]]:
    return [{"phone": f"861380013{i:04d}"} for i in range(n)]


def statuses(ctx: Context) -> dict[str, int]:
    m = messages_table.c
    with ctx.engine.connect() as conn:
        rows = conn.execute(sa.select(m.status, sa.func.count()).group_by(m.status)).all()
    return {str(s): int(n) for s, n in rows}


def parked(ctx: Context) -> list[Booking]:
    key = ctx.limiter.keys(ctx.settings.account("nx")).base + ":parked"
    return [Booking.decode(raw) for raw in ctx.redis.zrange(key, 0, -1)]


def make_due(ctx: Context) -> None:
    """The parked slots have come (the server clock is fakeredis's: the real time)."""
    key = ctx.limiter.keys(ctx.settings.account("nx")).base + ":parked"
    for raw in ctx.redis.zrange(key, 0, -1):
        b = Booking.decode(raw)
        now = time.time()
        ctx.redis.zrem(key, raw)
        ctx.redis.zadd(key, {Booking(b.token, b.group_key, now, b.slot).encode(): now * 1e6})


def requests(ctx: Context) -> int:
    return len(ctx.transport.requests)  # type: ignore[attr-defined]


def test_a_slot_ahead_is_parked_with_a_wake_up_not_slept(
    ctx: Context, published: Published
) -> None:
    ctx.settings = make_settings(ctx.settings.database_url, max_requests_per_second=10, max_batch=2)
    job = enqueue_stream("nx", phones(8), defaults={"content": "x"}, cfg=ctx.settings)
    t0 = time.time()
    dispatch(ctx, "nx")  # the first slot is now: sent in the task
    assert requests(ctx) == 1
    published.clear()
    dispatch(ctx, "nx")  # the next slot is ~0.1 s ahead: booked and parked, nothing sent
    assert requests(ctx) == 1
    bookings = parked(ctx)  # one; two if this slow test let the next slot come near too
    assert 1 <= len(bookings) <= 2
    assert statuses(ctx) == {
        "sent": 2,
        "sending": 2 * len(bookings),
        "queued": 6 - 2 * len(bookings),
    }
    wakes = [p for p in published if p[0] == "dispatch.nxcloud.sms"]
    assert len(wakes) == len(bookings) and all(w[3] <= 0.204 for w in wakes), wakes
    assert min(b.send_at for b in bookings) >= t0 + 0.1  # one slot (1.02 s / 10) after the first
    # Their slots come: the next dispatch of the account sends them first.
    make_due(ctx)
    dispatch(ctx, "nx")
    assert requests(ctx) >= 1 + len(bookings)
    counts = job_status(job.job_id, cfg=ctx.settings).counts
    assert counts.get("sent", 0) >= 2 + 2 * len(bookings)


def test_a_full_departure_window_parks_the_batch_again(
    ctx: Context, published: Published, monkeypatch: Any
) -> None:
    """A parked batch whose slot came but whose departure window is still full (a sender
    before it left late) is parked again for when the window frees: still claimed, not
    marked departing, nothing sent, no process waiting."""
    ctx.settings = make_settings(ctx.settings.database_url, max_requests_per_second=10, max_batch=2)
    enqueue_stream("nx", phones(8), defaults={"content": "x"}, cfg=ctx.settings)
    dispatch(ctx, "nx")
    dispatch(ctx, "nx")
    make_due(ctx)
    monkeypatch.setattr(ctx.limiter, "try_depart", lambda *a, **k: 0.3)
    published.clear()
    bookings = len(parked(ctx))
    before = time.time()
    dispatch(ctx, "nx")
    assert requests(ctx) == 1
    # The due ones parked again 0.3 s on (a slow run may have booked the next slot too).
    again = parked(ctx)
    assert sum(1 for b in again if b.send_at >= before + 0.3) >= bookings
    assert statuses(ctx).get("sending") == 2 * len(again)
    with ctx.engine.connect() as conn:
        departed = conn.execute(sa.select(batches_table.c.departed_at)).scalars().all()
    assert departed == [None] * len(again)  # unmarked: the sweep would requeue, not reconcile
    wakes = [p for p in published if p[0] == "dispatch.nxcloud.sms"]
    assert len(wakes) >= bookings and all(p[3] <= 0.3 for p in wakes)


def test_a_saturated_account_claims_nothing_until_its_slot_is_near(
    ctx: Context, published: Published
) -> None:
    """At 2/s the next slot is 0.5 s away after a send: rows are not claimed that early (a
    single arriving meanwhile must still make the next request); one wake-up comes when the
    slot is within reach, however many dispatches ask."""
    ctx.settings = make_settings(ctx.settings.database_url, max_requests_per_second=2, max_batch=2)
    enqueue_stream("nx", phones(8), defaults={"content": "x"}, cfg=ctx.settings)
    dispatch(ctx, "nx")
    published.clear()
    for _ in range(3):
        assert dispatch(ctx, "nx").claimed == 0
    assert statuses(ctx) == {"sent": 2, "queued": 6} and parked(ctx) == []
    wakes = [p for p in published if p[0] == "dispatch.nxcloud.sms"]
    assert len(wakes) == 1 and 0 < wakes[0][3] <= 0.51 - 0.15, wakes


def test_a_full_concurrency_cap_claims_nothing_and_waits_for_a_release(
    ctx: Context, published: Published
) -> None:
    ctx.settings = make_settings(ctx.settings.database_url, concurrency=1)
    account = ctx.settings.account("nx")
    held = ctx.limiter.acquire_slot(account, lease_s=30)
    assert held is not None
    enqueue_stream("nx", phones(3), defaults={"content": "x"}, cfg=ctx.settings)
    report = dispatch(ctx, "nx")
    assert report.claimed == 0 and requests(ctx) == 0
    assert statuses(ctx) == {"queued": 3}
    assert ctx.limiter.slots.take_want(account)  # the next release wakes the account


def test_a_release_wakes_the_account_a_dispatch_left(ctx: Context, published: Published) -> None:
    ctx.settings = make_settings(ctx.settings.database_url, concurrency=1)
    account = ctx.settings.account("nx")
    enqueue_stream("nx", phones(3), defaults={"content": "x"}, cfg=ctx.settings)
    ctx.limiter.slots.want(account)
    published.clear()
    dispatch(ctx, "nx")
    assert requests(ctx) == 1
    assert ("dispatch.nxcloud.sms", ["nx"], "nxcloud.sms", 0) in published
    assert not ctx.limiter.slots.take_want(account)


def test_a_task_that_parked_and_then_sends_now_still_recruits_the_next_claim(
    ctx: Context, published: Published, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A paced task's first turn parks everything (no follow-up: the parked batch's wake-up
    runs a task); its next turn's full claim goes now. Nothing else is then scheduled for the
    account, so that turn must publish the follow-up (regression: none was published, and a
    saturated account sent nothing until the sweep woke it)."""
    ctx.settings = make_settings(ctx.settings.database_url, max_requests_per_second=10)
    rows = [repo.Claimed(f"m{i}", f"+86138001380{i:02d}", "g", "{}", 1) for i in range(2)]
    turns = iter(
        [
            loop._Booked("t1", [], full=True),  # everything parked
            loop._Booked("t2", [Admission(rows)], full=True),  # goes now
            None,
        ]
    )
    monkeypatch.setattr(loop, "_claim_and_book", lambda *args: next(turns))
    monkeypatch.setattr(loop, "send_batch", lambda *args: None)
    monkeypatch.setattr(loop, "room_ahead", lambda *args: True)
    dispatch(ctx, "nx")
    assert [(name, args, countdown) for name, args, _q, countdown in published] == [
        ("dispatch.nxcloud.sms", ["nx"], 0)
    ]
