"""Global rate limits through real workers, asserted on what the simulator received."""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Callable

import pytest

from teledispatch.producer.lookup import job_status
from teledispatch.producer.submit import enqueue_stream
from tests.support import Stack, poll

pytestmark = pytest.mark.integration

RATE = 10
SECONDS = 30


def max_in_window(times: list[float], window: float) -> int:
    times = sorted(times)
    return max((bisect.bisect_left(times, t + window) - i for i, t in enumerate(times)), default=0)


@pytest.mark.timeout(SECONDS * 4 + 180)
def test_requests_per_second_hold_across_three_workers(make_stack: Callable[..., Stack]) -> None:
    """30 s of traffic at the limit from 12 processes on (here) 2 shared cores: no 1-s window
    of the simulator's arrival stamps may hold more than the limit.

    What makes it hold: reservations pace the slots; the departure gate counts each request
    at its measured write time (a sender descheduled after its grant cannot bunch with the
    next); the simulator stamps arrivals at their first bytes and has no long GC pauses.
    Measured on the loaded machine: grant to write up to ~40 ms (absorbed exactly by the gate),
    write to arrival stamp up to ~10 ms (within the 20 ms margin). The workers run at the same
    priority as the simulator: no model of a separate provider machine was needed.

    How close to the limit the workers get is a timing figure that a loaded machine moves, so
    it is not asserted here: ``python -m bench`` measures it ("provider-bound: utilisation").
    """
    stack = make_stack(["--seed", "1"])
    stack.configure("nxcloud", max_requests_per_second=RATE)
    total = RATE * SECONDS * 200
    # Stored before the workers start, so that storing does not compete for the CPU with
    # the sends being measured (the limit must hold either way; the measurement is cleaner).
    job = enqueue_stream(
        "nxcloud",
        ({"phone": f"+86139{i:08d}"} for i in range(total)),
        defaults={"content": "rate"},
        cfg=stack.cfg,
    )
    for n in range(3):
        stack.worker(concurrency=4, beat=n == 0, name=f"w{n}")
    stack.wait_done([job.job_id], timeout=SECONDS * 4 + 60)
    requests = [r for r in stack.sim_requests() if r["channel"] == "nxcloud.sms"]
    times = [r["t"] for r in requests]
    worst = max_in_window(times, 1.0)
    ids = [i for r in requests for i in r["ids"]]
    # Every message exactly once. How many requests carried them is not asserted: a batch
    # handed back for a missed slot (a process descheduled for over a second on a loaded
    # machine) can be claimed with fewer rows than a full one, which costs a request, not a
    # limit (seen once in CI: 301 requests for 300 full batches).
    assert (len(ids), len(set(ids))) == (total, total)
    assert len(times) >= RATE * SECONDS
    assert worst <= RATE, f"{worst} requests in one second"


def test_recipient_cap_defers_and_then_sends(make_stack: Callable[..., Stack]) -> None:
    stack = make_stack(["--seed", "2"])
    stack.configure("nxcloud", recipient_caps=[[2, "10s"]], linger_ms=50)
    stack.worker(concurrency=4, beat=True)
    phones = [f"+86139{i:08d}" for i in range(20)]
    job = enqueue_stream(
        "nxcloud",
        ({"phone": p, "content": f"n{k}"} for k in range(4) for p in phones),
        allow_duplicates=True,
        cfg=stack.cfg,
    )
    stack.wait_done([job.job_id], timeout=90)
    per_id_time = {
        i: r["t"] for r in stack.sim_requests() if r["channel"] == "nxcloud.sms" for i in r["ids"]
    }
    assert len(per_id_time) == 80  # every message went out once
    by_phone: dict[int, list[float]] = defaultdict(list)
    for message_id, t in per_id_time.items():
        seq = int(message_id.rsplit("-", 1)[1])
        by_phone[seq % 20].append(t)
    for times in by_phone.values():
        assert len(times) == 4
        assert max_in_window(times, 10.0) <= 2, sorted(times)


def test_recipient_cap_of_one_sends_the_first_and_defers_the_second(
    make_stack: Callable[..., Stack],
) -> None:
    """One message per number per minute, two to each number in the same job, through the
    rate-limited path (reservation, parking, departure gate): each number's first message is
    sent, its second deferred, never both deferred and never both sent."""
    stack = make_stack(["--seed", "3"])
    stack.configure("nxcloud", recipient_caps=[[1, "60s"]], max_requests_per_second=5, linger_ms=50)
    stack.worker(concurrency=4, beat=True)
    phones = [f"+86137{i:08d}" for i in range(10)]
    job = enqueue_stream(
        "nxcloud",
        ({"phone": p, "content": f"n{k}"} for k in range(2) for p in phones),
        allow_duplicates=True,
        cfg=stack.cfg,
    )
    want = {"sent": 10, "deferred": 10}
    poll(lambda: job_status(job.job_id, cfg=stack.cfg).counts == want, 90, f"counts {want}")
    sent = [i for r in stack.sim_requests() if r["channel"] == "nxcloud.sms" for i in r["ids"]]
    assert len(sent) == 10
    assert sorted(int(i.rsplit("-", 1)[1]) % 10 for i in sent) == list(range(10))
