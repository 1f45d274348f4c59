"""Global rate limits through real workers, asserted on what the simulator received."""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Callable

import pytest

from producer.submit import enqueue_stream

from .conftest import Stack

pytestmark = pytest.mark.integration

RATE = 10
SECONDS = 20


def max_in_window(times: list[float], window: float) -> int:
    times = sorted(times)
    return max((bisect.bisect_left(times, t + window) - i for i, t in enumerate(times)), default=0)


@pytest.mark.xfail(
    strict=False,
    reason="known gap (issue 4 open): reservations and the departure gate hold 10 per 1.02 s "
    "of departures, but with 12 worker processes on 2 cores the spread between departure and "
    "arrival at the simulator reaches ~40 ms, and some runs see 11 in one second",
)
def test_requests_per_second_hold_across_three_workers(make_stack: Callable[..., Stack]) -> None:
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
    times = [r["t"] for r in stack.sim_requests() if r["channel"] == "nxcloud.sms"]
    assert len(times) == RATE * SECONDS
    assert max_in_window(times, 1.0) <= RATE
    busy = max(times) - min(times)
    utilisation = (len(times) - 1) / (busy * RATE)
    assert utilisation >= 0.95, f"utilisation {utilisation:.3f} over {busy:.1f}s"


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
