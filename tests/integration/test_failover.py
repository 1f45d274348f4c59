"""Routes through real workers and the simulator: with NXCloud down, a route's messages
leave through USpeedo; a number NXCloud does not reach goes through USpeedo; and every
message is accepted by exactly one provider (both providers' request logs)."""

from __future__ import annotations

import json
import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from teledispatch.config import load_settings
from teledispatch.producer.jobs import SendJob
from teledispatch.producer.lookup import job_messages, job_status
from teledispatch.producer.submit import enqueue_job
from tests.support import Stack

pytestmark = pytest.mark.integration

ROUTE = """
[routes.sms]
accounts = ["nxcloud", "uspeedo"]

[routes.sms.uspeedo]
template_id = "T100"
sender_id = "ACME"
"""


def add_route(stack: Stack) -> None:
    path = Path(stack.env["TELEDISPATCH_CONFIG"])
    path.write_text(path.read_text() + ROUTE)
    stack.cfg = load_settings(path)


def set_faults(stack: Stack, **faults: Any) -> None:
    body = json.dumps({"channel": "nxcloud.sms", **faults}).encode()
    request = urllib.request.Request(
        stack.sim_url + "/_sim/faults", body, {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as resp:
        assert resp.status == 200


def accepted_phones(stack: Stack, job_id: str) -> Counter[str]:
    """Every acceptance of a message of the job by either provider, by phone (digits)."""
    phone_of = {m.id: m.phone.lstrip("+") for m in job_messages(job_id, limit=1000, cfg=stack.cfg)}
    found: Counter[str] = Counter()
    for r in stack.sim_requests():
        if r["channel"] == "nxcloud.sms":
            found.update(phone_of[i] for i in r["accepted"] if i in phone_of)
        elif r["channel"] == "uspeedo.sms":
            found.update(p.lstrip("+") for p in r["accepted"])
    return found


def send(stack: Stack, phones: list[str]) -> str:
    job = SendJob(
        route="sms", recipients=[{"phone": p} for p in phones], defaults={"content": "Code 1234"}
    )
    return enqueue_job(job, cfg=stack.cfg).job_id


@pytest.mark.timeout(300)
def test_with_nxcloud_down_the_route_leaves_through_uspeedo(
    make_stack: Callable[..., Stack],
) -> None:
    stack = make_stack(["--seed", "3"])
    stack.configure("nxcloud", max_batch=10, circuit_failures=2)
    add_route(stack)
    set_faults(stack, fail_rate=1.0, fail_status=503)
    phones = [f"+86139{i:08d}" for i in range(60)]
    job = send(stack, phones)
    stack.worker(concurrency=2, beat=True)
    started = time.monotonic()
    stack.wait_done([job], timeout=120)
    took = time.monotonic() - started
    assert job_status(job, cfg=stack.cfg).counts == {"sent": 60}
    views = job_messages(job, limit=1000, cfg=stack.cfg)
    assert {v.account for v in views} == {"uspeedo"}
    moved = [v for v in views if v.history]
    assert moved and all(v.history[0].account == "nxcloud" for v in moved)
    assert {a.outcome for v in moved for a in v.history} == {"paused"}
    # Each message accepted exactly once, by one provider (NXCloud accepted none: it was down).
    assert accepted_phones(stack, job) == Counter(p.lstrip("+") for p in phones)
    # Generous on a shared machine; the circuit opens after two failed requests.
    assert took < 60, f"{took:.1f}s to leave through USpeedo"


@pytest.mark.timeout(300)
def test_a_number_nxcloud_does_not_reach_goes_through_uspeedo(
    make_stack: Callable[..., Stack],
) -> None:
    stack = make_stack(["--seed", "4", "--unsupported-prefixes", "nxcloud.sms=44"])
    add_route(stack)
    uk, cn = ["+447911123456", "+447911123457"], ["+8613900000001", "+8613900000002"]
    job = send(stack, uk + cn)
    stack.worker(concurrency=2, beat=True)
    stack.wait_done([job], timeout=120)
    views = {v.phone: v for v in job_messages(job, cfg=stack.cfg)}
    assert {v.status for v in views.values()} == {"sent"}
    for phone in uk:
        assert views[phone].account == "uspeedo"
        assert [(a.account, a.outcome, a.error_code) for a in views[phone].history] == [
            ("nxcloud", "refused", "13005")
        ]
    assert {views[p].account for p in cn} == {"nxcloud"}
    assert accepted_phones(stack, job) == Counter(p.lstrip("+") for p in uk + cn)
