"""What the outage tests share: faults set on the running simulator, its request log read
for the provider's view, and the time from recovery to the account's full rate."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Sequence
from typing import Any

from teledispatch.producer.lookup import job_status
from teledispatch.producer.submit import enqueue_stream
from tests.support import Stack

#: The account's pace during the outage tests: full rate is this many requests a second.
RATE = 5
BATCH = 5


def set_faults(stack: Stack, **faults: Any) -> None:
    body = json.dumps({"channel": "nxcloud.sms", **faults}).encode()
    request = urllib.request.Request(
        stack.sim_url + "/_sim/faults", body, {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as resp:
        assert resp.status == 200


def nx_sends(stack: Stack) -> list[dict[str, Any]]:
    return [r for r in stack.sim_requests() if r["channel"] == "nxcloud.sms"]


def backlog(stack: Stack, n: int, first: int = 0) -> list[str]:
    """A job of ``n`` and a few single OTPs on ``nxcloud`` (numbers from ``first`` on)."""
    jobs = [
        enqueue_stream(
            "nxcloud",
            ({"phone": f"+86139{i:08d}"} for i in range(first, first + n)),
            defaults={"content": "outage"},
            cfg=stack.cfg,
        ).job_id
    ]
    jobs += [
        enqueue_stream(
            "nxcloud", [{"phone": f"+86138{i:08d}"}], defaults={"content": "otp"}, cfg=stack.cfg
        ).job_id
        for i in range(first, first + 5)
    ]
    return jobs


def counts(stack: Stack, jobs: Sequence[str]) -> dict[str, int]:
    total: dict[str, int] = {}
    for job in jobs:
        for status, n in job_status(job, cfg=stack.cfg).counts.items():
            total[status] = total.get(status, 0) + n
    return total


def seconds_to_full_rate(sends: Sequence[dict[str, Any]], recovered_at: float) -> float:
    """From ``recovered_at`` to the start of the first second in which the simulator
    accepted requests at 80 % of :data:`RATE` or more (the limiter keeps it under 100 %)."""
    times = sorted(r["t"] for r in sends if r["accepted"] and r["t"] >= recovered_at)
    for i, t in enumerate(times):
        if sum(1 for x in times[i:] if x < t + 1.0) >= 0.8 * RATE:
            return float(t) - recovered_at
    raise AssertionError(f"never back at {RATE}/s after recovery: {len(times)} requests")
