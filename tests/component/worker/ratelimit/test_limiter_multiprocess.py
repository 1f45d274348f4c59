"""Six worker processes share one account through a real Redis, as workers on many machines do.

Each process loops: reserve, sleep until the slot, "send" (record the wall clock), for a few
seconds. Merged, the sends must never put more than the limit in any 1-second window. How much
of the limit they use is a bench figure (``make bench``), not asserted here: on a loaded
machine it measures the machine.
"""

from __future__ import annotations

import multiprocessing as mp
import random
import time
import uuid
from bisect import bisect_right
from multiprocessing.synchronize import Barrier
from typing import Any

import pytest
import redis

from teledispatch.config import AccountConfig
from teledispatch.worker.ratelimit import RateLimiter

PROCESSES = 6
RUN_S = 5.0


def _worker(
    url: str,
    prefix: str,
    limits: dict[str, Any],
    max_batch: int,
    barrier: Barrier,
    out: mp.Queue[tuple[list[tuple[float, int]], int]],
) -> None:
    # Reservations alone, without the departure gate: a late wake must give its slot up.
    rl = RateLimiter(redis.Redis.from_url(url), key_prefix=prefix, late_limit_s=0.01)
    acct = AccountConfig(name="mp", channel="nxcloud.sms", base_url="http://x", **limits)
    rng = random.Random()
    sends: list[tuple[float, int]] = []
    late = 0
    barrier.wait(timeout=30)
    stop = time.monotonic() + RUN_S
    while time.monotonic() < stop:
        phones = [f"+{rng.randrange(10**9)}" for _ in range(rng.randint(1, max_batch))]
        r = rl.reserve(acct, phones, max_wait_s=1.0)
        if r.send_at is None:
            time.sleep(r.wait_s)  # a timed wait for the budget, not a poll
            continue
        if r.wait_for_slot():
            sends.append((time.time(), len(r.admitted)))
        else:
            late += 1  # woke too late: the slot is given up, never used late
    out.put((sends, late))


def run(url: str, limits: dict[str, Any], max_batch: int) -> tuple[list[tuple[float, int]], int]:
    client: redis.Redis[bytes] = redis.Redis.from_url(url, socket_connect_timeout=5)
    prefix = f"td:rl:mp:{uuid.uuid4().hex}"
    ctx = mp.get_context("forkserver")
    barrier = ctx.Barrier(PROCESSES)
    out: mp.Queue[tuple[list[tuple[float, int]], int]] = ctx.Queue()
    procs = [
        ctx.Process(target=_worker, args=(url, prefix, limits, max_batch, barrier, out))
        for _ in range(PROCESSES)
    ]
    for p in procs:
        p.start()
    try:
        results = [out.get(timeout=60) for _ in procs]
    finally:
        for p in procs:
            p.join(timeout=10)
            if p.is_alive():
                p.kill()
        keys = list(client.scan_iter(match=f"{prefix}:*"))
        if keys:
            client.delete(*keys)
    sends = sorted(s for proc_sends, _ in results for s in proc_sends)
    return sends, sum(late for _, late in results)


def max_per_second(sends: list[tuple[float, int]], weight: bool) -> int:
    """Most sends (or messages) inside any closed 1-second window [t, t + 1]."""
    times = [t for t, _ in sends]
    best = 0
    for i, (t, _) in enumerate(sends):
        j = bisect_right(times, t + 1.0)
        best = max(best, sum(n for _, n in sends[i:j]) if weight else j - i)
    return best


def utilisation(sends: list[tuple[float, int]], rate: float, weight: bool) -> float:
    span = sends[-1][0] - sends[0][0]
    count = sum(n for _, n in sends) if weight else len(sends)
    last = sends[-1][1] if weight else 1  # the last slot opens the span, not fills it
    return (count - last) / span / rate


@pytest.mark.timeout(120)
def test_six_processes_at_20_requests_per_second(real_redis_url: str) -> None:
    sends, late = run(real_redis_url, {"max_requests_per_second": 20}, max_batch=1)
    worst = max_per_second(sends, weight=False)
    used = utilisation(sends, 20, weight=False)
    print(f"\nrequests: {len(sends)}, max in 1 s: {worst}, utilisation {used:.3f}, late {late}")
    assert worst <= 20
    assert sends, "no process sent anything"


@pytest.mark.timeout(120)
def test_six_processes_sharing_a_message_rate(real_redis_url: str) -> None:
    limits = {"max_requests_per_second": 30, "max_messages_per_second": 50}
    sends, late = run(real_redis_url, limits, max_batch=4)
    worst_req = max_per_second(sends, weight=False)
    worst_msg = max_per_second(sends, weight=True)
    used = utilisation(sends, 50, weight=True)
    print(
        f"\nrequests: {len(sends)}, max req/1 s: {worst_req}, max msg/1 s: {worst_msg}, "
        f"message utilisation {used:.3f}, late {late}"
    )
    assert worst_req <= 30
    assert worst_msg <= 50
    assert sends, "no process sent anything"
