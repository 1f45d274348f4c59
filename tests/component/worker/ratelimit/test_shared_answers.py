"""The adaptive margin learns from every process's answer times (``ratelimit/answers.py``),
on fakeredis and a real Redis; a passed clock decides when a process reads them again."""

from __future__ import annotations

import fakeredis
import pytest
import redis

from teledispatch.worker.ratelimit.answers import SharedAnswers
from teledispatch.worker.ratelimit.margin import MarginEstimator

CEILING = 0.02


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def process(client: redis.Redis[bytes], prefix: str, clock: Clock) -> SharedAnswers:
    """One worker process's view: its own estimator, the shared list."""
    est = MarginEstimator(ceiling_s=CEILING, window=100, min_samples=10, safety=1.0)
    return SharedAnswers(client, est, key_prefix=prefix, refresh_s=1.0, clock=clock)


def margin(p: SharedAnswers) -> float:
    return p._estimator.margin("acct")


def test_a_process_learns_the_margin_from_what_the_others_measured(
    client: redis.Redis[bytes], prefix: str
) -> None:
    clock = Clock()
    a, b = process(client, prefix, clock), process(client, prefix, clock)
    for _ in range(12):
        a.observe("acct", 0.005)
    assert margin(a) == pytest.approx(0.005)
    # b has measured once, but reads every process's samples with it: twelve of 5 ms, one of
    # 4 ms, enough for an estimate of its own.
    b.observe("acct", 0.004)
    assert margin(b) == pytest.approx(0.005)


def test_between_reads_a_process_counts_its_own_samples_and_then_everyones(
    client: redis.Redis[bytes], prefix: str
) -> None:
    clock = Clock()
    a, b = process(client, prefix, clock), process(client, prefix, clock)
    b.observe("acct", 0.001)  # b's first observation reads the (empty) list
    for _ in range(20):
        a.observe("acct", 0.015)
    for _ in range(9):
        b.observe("acct", 0.001)  # within REFRESH_S: b's own ten samples only
    assert margin(b) == pytest.approx(0.003)  # the floor: its samples are 1 ms
    clock.t += 1.0
    b.observe("acct", 0.001)  # read again: a's twenty slow answers now count
    assert margin(b) == pytest.approx(0.015)


def test_the_list_keeps_the_estimators_window(client: redis.Redis[bytes], prefix: str) -> None:
    clock = Clock()
    a = process(client, prefix, clock)
    for i in range(250):
        a.observe("acct", i / 1e6)
    key = f"{prefix}:{{acct}}:answers"
    assert client.llen(key) == 100
    assert float(client.lindex(key, -1) or 0) == pytest.approx(249 / 1e6)
    assert 0 < client.ttl(key) <= 3600


def test_without_redis_the_sample_is_kept_locally() -> None:
    server = fakeredis.FakeServer()
    server.connected = False  # every command raises ConnectionError
    dead: redis.Redis[bytes] = fakeredis.FakeRedis(server=server)
    est = MarginEstimator(ceiling_s=CEILING, window=100, min_samples=10, safety=1.0)
    p = SharedAnswers(dead, est, key_prefix="td:rl", clock=Clock())
    for _ in range(10):
        p.observe("acct", 0.006)  # never raises
    assert est.margin("acct") == pytest.approx(0.006)
