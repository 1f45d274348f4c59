"""Properties of the limiter over random arrival sequences on a controlled clock.

Whatever the arrivals, batch sizes, horizons and throttle reports: no window of (length +
margin) ever holds more than the limit, slots never go back in time, and every index of a batch
gets exactly one verdict. And under steady demand no budget is left idle.
"""

from __future__ import annotations

import math
import os
import uuid
from bisect import bisect_left
from functools import cache
from typing import Any

import fakeredis
import pytest
import redis
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from teledispatch.config import AccountConfig
from teledispatch.worker.ratelimit import RateLimiter, Reservation
from tests.component.worker.ratelimit.conftest import REDIS_URL_ENV

T0 = 1_700_006_400_000
BACKENDS = ["fakeredis", "redis"]
PROPERTY = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@cache
def backend(name: str) -> redis.Redis[bytes]:
    if name == "fakeredis":
        return fakeredis.FakeRedis()
    # The tier's redis-server (conftest.real_redis_url): hypothesis bodies take no fixtures.
    url = os.environ[REDIS_URL_ENV]
    client: redis.Redis[bytes] = redis.Redis.from_url(url, socket_connect_timeout=5)
    return client


#: Key prefixes of this process's earlier examples, not yet deleted.
_used: list[tuple[redis.Redis[bytes], str]] = []


def fresh_limiter(name: str, **kw: Any) -> RateLimiter:
    """A limiter on its own key prefix, so every example starts from empty state.

    Only this process's earlier prefixes are deleted (to keep the DB small): the real Redis is
    shared with other test runs, whose keys must not vanish under them. The last example's keys
    expire by themselves, as every limiter key does.
    """
    while _used:
        client, old = _used.pop()
        keys = list(client.scan_iter(match=f"{old}:*"))
        if keys:
            client.delete(*keys)
    client = backend(name)
    prefix = f"td:rl:property:{uuid.uuid4().hex}"
    _used.append((client, prefix))
    return RateLimiter(client, key_prefix=prefix, **kw)


def account(**limits: Any) -> AccountConfig:
    return AccountConfig(name="p", channel="nxcloud.sms", base_url="http://x", **limits)


def us(seconds: float) -> int:
    return round(seconds * 1_000_000)


def max_in_window(events: list[tuple[int, int]], window_us: int) -> int:
    """Largest total weight of events inside any half-open window [t, t + window)."""
    times = [t for t, _ in events]
    best = 0
    for i, (t, _) in enumerate(events):
        j = bisect_left(times, t + window_us)
        best = max(best, sum(w for _, w in events[i:j]))
    return best


def check_partition(r: Reservation, n: int) -> None:
    parts = [*r.admitted, *r.deferred, *r.retry]
    assert sorted(parts) == list(range(n))


steps = st.lists(
    st.tuples(
        st.integers(0, 700),  # ms since the previous arrival
        st.integers(1, 12),  # batch size
        st.sampled_from([0, 300, 1000, 2000]),  # max_wait in ms
        st.booleans() | st.just(False),  # provider said "too fast"
    ),
    min_size=1,
    max_size=40,
)


@pytest.mark.parametrize("name", BACKENDS)
@PROPERTY
@given(
    req=st.sampled_from([None, 1.0, 3.0, 10.0, 2.5]),
    msg=st.sampled_from([None, 5.0, 20.0, 7.5]),
    jitter=st.sampled_from([0.0, 0.02]),
    arrivals=steps,
)
def test_no_second_window_exceeds_the_rates(
    name: str,
    req: float | None,
    msg: float | None,
    jitter: float,
    arrivals: list[tuple[int, int, int, bool]],
) -> None:
    rl = fresh_limiter(name, jitter_s=jitter)
    acct = account(max_requests_per_second=req, max_messages_per_second=msg)
    now = T0
    sends: list[tuple[int, int]] = []
    for gap, size, wait_ms, throttled in arrivals:
        now += gap
        if throttled:
            rl.report_throttled(acct, now_ms=now)
        r = rl.reserve(acct, [f"+{i}" for i in range(size)], now_ms=now, max_wait_s=wait_ms / 1000)
        check_partition(r, size)
        assert not r.deferred  # no per-recipient or hour/day limits here
        if r.send_at is None:
            assert r.admitted == ()
            continue
        t = us(r.send_at)
        assert now * 1000 <= t <= now * 1000 + wait_ms * 1000
        assert not sends or t >= sends[-1][0]
        sends.append((t, len(r.admitted)))
    window = us(1 + jitter)
    if req is not None:
        assert max_in_window([(t, 1) for t, _ in sends], window) <= math.floor(req)
    if msg is not None:
        assert max_in_window(sends, window) <= math.floor(msg)


caps = st.lists(st.tuples(st.integers(1, 4), st.integers(1, 20)), min_size=1, max_size=3).map(
    lambda cs: [(count, float(window)) for count, window in cs]
)


@pytest.mark.parametrize("name", BACKENDS)
@PROPERTY
@given(
    recipient_caps=caps,
    hour=st.sampled_from([None, 5, 30]),
    arrivals=st.lists(
        st.tuples(
            st.integers(0, 3000) | st.integers(0, 2_000_000),  # ms; sometimes past the hour
            st.lists(st.sampled_from("ABC"), min_size=1, max_size=6),
        ),
        min_size=1,
        max_size=40,
    ),
)
def test_recipient_caps_and_hour_window_hold(
    name: str,
    recipient_caps: list[tuple[int, float]],
    hour: int | None,
    arrivals: list[tuple[int, list[str]]],
) -> None:
    rl = fresh_limiter(name)
    acct = account(recipient_caps=recipient_caps, max_messages_per_hour=hour)
    now = T0
    per_phone: dict[str, list[tuple[int, int]]] = {}
    total: list[tuple[int, int]] = []
    for gap, phones in arrivals:
        now += gap
        r = rl.reserve(acct, phones, now_ms=now)
        check_partition(r, len(phones))
        assert not r.retry  # no per-second limits: nothing waits for a slot
        assert all(due > now / 1000 for due in r.deferred.values())
        if r.send_at is not None:
            t = us(r.send_at)
            total.append((t, len(r.admitted)))
            for i in r.admitted:
                per_phone.setdefault(phones[i], []).append((t, 1))
    for sends in per_phone.values():
        for count, window in recipient_caps:
            assert max_in_window(sends, us(window + 0.02)) <= count
    if hour is not None:
        assert max_in_window(total, us(3600.02)) <= hour


REQ_S, MSG_S = 8, 40


@pytest.mark.parametrize("name", BACKENDS)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sizes=st.lists(st.integers(1, 30), min_size=1, max_size=8))
@example(sizes=[1, 13])  # small batches must not starve big ones of request slots
@example(sizes=[27, 1, 4, 3])  # 94.5 % of the messages in 10 s, and nothing wasted
def test_steady_demand_leaves_no_budget_idle(name: str, sizes: list[int]) -> None:
    """Under steady demand (a dispatch loop: the next batch at once while slots are handed out,
    else the same batch after wait_s) no budget is left idle: every slot is the earliest the
    limits allow (the request spacing after the previous slot, or the moment the messages
    window first has room), and each slot takes as much of its batch as fits there.

    A share of the budget over a fixed span is not a property of the design: messages/s is a
    window, which uneven batches fill in lumps. With sizes [27, 1, 4, 3] every 1.02 s window
    from the first slot on holds exactly 40 messages (98 % of 40/s), but the window that 10 s
    cuts holds 18 of its 40 before the cut (its 22-message batch comes after): 94.5 % in 10 s.
    """
    jitter = 0.02
    rl = fresh_limiter(name, jitter_s=jitter)
    acct = account(max_requests_per_second=REQ_S, max_messages_per_second=MSG_S)
    window = us(1 + jitter)
    spacing = math.ceil(window / REQ_S)
    now, end = T0, T0 + 10_000
    sends: list[tuple[int, int]] = []  # (slot us, messages)

    def in_window(at: int) -> int:
        """Messages sent in the window that ends at ``at`` (as reserve.lua counts them)."""
        return sum(n for t, n in sends if t > at - window)

    k = 0
    while now < end:
        size = sizes[k % len(sizes)]
        r = rl.reserve(acct, [f"+{i}" for i in range(size)], now_ms=now)
        if r.send_at is None:  # nothing fits within the horizon: same batch, after wait_s
            now += max(1, math.ceil(r.wait_s * 1000))
            continue
        k += 1  # the retried rest of a cut batch goes back to the queue, like a deferral
        t = us(r.send_at)
        if not sends:
            assert t == T0 * 1000
        else:
            no_room_before = in_window(t - 1) >= MSG_S
            assert t == sends[-1][0] + spacing or no_room_before, (t, sends[-1][0])
        assert len(r.admitted) == min(size, MSG_S - in_window(t))
        sends.append((t, len(r.admitted)))
    assert max_in_window(sends, window) <= MSG_S
