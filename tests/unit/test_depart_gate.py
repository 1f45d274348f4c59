"""The departure gate: a sliding window over actual departures, on a controlled clock."""

from __future__ import annotations

import fakeredis
import pytest

from producer.config import AccountConfig, parse_config
from worker.ratelimit import RateLimiter


def account(**limits: object) -> AccountConfig:
    table = {"channel": "nxcloud.sms", "base_url": "http://x", **limits}
    return parse_config({"accounts": {"a": table}})["a"]


@pytest.fixture
def limiter() -> RateLimiter:
    return RateLimiter(fakeredis.FakeRedis(), jitter_s=0.02)


def test_requests_window_refuses_the_eleventh(limiter: RateLimiter) -> None:
    acct = account(max_requests_per_second=10)
    for k in range(10):
        assert limiter.depart(acct, 200, now_ms=1_000_000 + k * 90)
    # 10 departed within 0.81 s: an 11th before the first leaves the 1.02 s window waits.
    assert not limiter.depart(acct, 200, now_ms=1_000_000 + 950)
    assert not limiter.depart(acct, 200, now_ms=1_000_000 + 1019)
    assert limiter.depart(acct, 200, now_ms=1_000_000 + 1021)


def test_messages_window_counts_batch_sizes(limiter: RateLimiter) -> None:
    acct = account(max_messages_per_second=500)
    assert limiter.depart(acct, 300, now_ms=5_000_000)
    assert limiter.depart(acct, 200, now_ms=5_000_100)
    assert not limiter.depart(acct, 1, now_ms=5_000_500)
    assert limiter.depart(acct, 250, now_ms=5_001_021)  # the 300 left the window


def test_no_per_second_limit_is_a_no_op(limiter: RateLimiter) -> None:
    acct = account(max_messages_per_hour=10)
    assert all(limiter.depart(acct, 1000, now_ms=1_000) for _ in range(50))


def test_waits_then_departs_on_the_server_clock(limiter: RateLimiter) -> None:
    acct = account(max_requests_per_second=2)
    slept: list[float] = []
    assert limiter.depart(acct, 1) and limiter.depart(acct, 1)
    # Real clock: the third must wait for the window; the injected sleep records how long.
    assert limiter.depart(acct, 1, sleep=lambda s: slept.append(s) or __import__("time").sleep(s))
    assert slept and 0 < sum(slept) <= 1.1
