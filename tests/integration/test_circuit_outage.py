"""A provider outage through real workers: the circuit pauses the account, probes sparingly,
fails nothing, and everything leaves once the provider is back."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest
import redis as redis_lib

from teledispatch import circuits
from teledispatch.producer.lookup import job_status
from teledispatch.producer.submit import enqueue_stream
from tests.support import Stack, poll

pytestmark = pytest.mark.integration

BATCH = 10
BIG = 400
SINGLES = 10
OUTAGE_S = 15.0


def set_faults(stack: Stack, **faults: Any) -> None:
    body = json.dumps({"channel": "nxcloud.sms", **faults}).encode()
    request = urllib.request.Request(
        stack.sim_url + "/_sim/faults", body, {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as resp:
        assert resp.status == 200


def nx_sends(stack: Stack) -> list[dict[str, Any]]:
    return [r for r in stack.sim_requests() if r["channel"] == "nxcloud.sms"]


@pytest.mark.timeout(420)
def test_an_outage_fails_nothing_and_probes_instead_of_retrying(
    make_stack: Callable[..., Stack],
) -> None:
    stack = make_stack(["--seed", "1"])
    stack.configure("nxcloud", max_batch=BATCH)
    set_faults(stack, fail_rate=1.0, fail_status=503)
    jobs = [
        enqueue_stream(
            "nxcloud",
            ({"phone": f"+86139{i:08d}"} for i in range(BIG)),
            defaults={"content": "outage"},
            cfg=stack.cfg,
        ).job_id
    ]
    jobs += [
        enqueue_stream(
            "nxcloud", [{"phone": f"+86138{i:08d}"}], defaults={"content": "otp"}, cfg=stack.cfg
        ).job_id
        for i in range(SINGLES)
    ]
    batches = BIG // BATCH + 1  # the singles share requests
    stack.worker(concurrency=2, beat=True)
    client = redis_lib.Redis.from_url(stack.env["REDIS_URL"])
    poll(lambda: circuits.view(client, "nxcloud").paused, 120, "the circuit to open")
    line = circuits.view(client, "nxcloud").describe() or ""
    assert line.startswith("paused: ") and "since" in line
    # The outage goes on for a while with the circuit open: what the workers do meanwhile
    # is what is asserted (requests and outcomes), not how long anything took.
    time.sleep(OUTAGE_S)
    during = len(nx_sends(stack))
    counts: dict[str, int] = {}
    for job in jobs:
        for status, n in job_status(job, cfg=stack.cfg).counts.items():
            counts[status] = counts.get(status, 0) + n
    assert "failed" not in counts, counts
    assert during < batches // 2, f"{during} requests into the outage for {batches} batches"
    set_faults(stack, fail_rate=0)
    stack.wait_done(jobs, timeout=240)
    for job in jobs:
        assert set(job_status(job, cfg=stack.cfg).counts) == {"sent"}
    assert not circuits.view(client, "nxcloud").paused
