"""Mixed traffic through a real worker at its default concurrency: waits of a rate-limited
account hold no pool process, high-priority singles pass a saturating campaign, and expiry
holds for queued, deferred and retrying messages, all asserted on the simulator's log.

Ordering and counts are asserted, never durations: the machine is shared and noisy.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

import pytest

from teledispatch.producer.lookup import job_status
from teledispatch.producer.submit import enqueue_stream
from tests.support import Stack, poll

pytestmark = pytest.mark.integration

#: ``teledispatch worker`` without ``--concurrency``: one process per core (2 here).
DEFAULT_CONCURRENCY = os.cpu_count() or 2


def nx_times(stack: Stack) -> dict[str, float]:
    """Message id -> when the simulator received it (NXCloud: first arrival)."""
    seen: dict[str, float] = {}
    for entry in stack.sim_requests():
        if entry["channel"] == "nxcloud.sms":
            for message_id in entry["ids"]:
                seen.setdefault(message_id, float(entry["t"]))
    return seen


def campaign(stack: Stack, n: int, **kw: object) -> str:
    job = enqueue_stream(
        "nxcloud",
        ({"phone": f"+86139{i:08d}"} for i in range(n)),
        defaults={"content": "campaign"},
        cfg=stack.cfg,
        **kw,  # type: ignore[arg-type]
    )
    return job.job_id


@pytest.mark.timeout(240)
def test_singles_on_an_unlimited_account_leave_beside_a_saturated_one(
    make_stack: Callable[..., Stack],
) -> None:
    """A campaign on an account limited to 1 request/s keeps it saturated for ~30 s; singles
    on an unlimited account leave while it runs: each reaches the provider before the
    campaign's next-but-one request after it was enqueued (a pool process sleeping for the
    campaign's slot, as before, made them wait for those)."""
    stack = make_stack(["--seed", "11"])
    stack.configure("nxcloud", max_requests_per_second=1, max_batch=10, linger_ms=0)
    stack.configure("uspeedo", linger_ms=0)
    stack.worker(concurrency=DEFAULT_CONCURRENCY, beat=True)
    big = campaign(stack, 300)
    poll(lambda: len(nx_times(stack)) >= 20, 60, "the campaign under way")
    enqueued: dict[str, float] = {}
    for k in range(5):
        phone = f"+4479111{k:05d}"
        enqueued[phone.lstrip("+")] = time.time()
        enqueue_stream(
            "uspeedo",
            [{"phone": phone, "template_id": "T100", "sender_id": "ACME"}],
            defaults={"template_params": ["1234"]},
            cfg=stack.cfg,
        )
        time.sleep(1.5)  # pacing the producer, not synchronising with the worker

    def singles() -> dict[str, float]:
        out: dict[str, float] = {}
        for entry in stack.sim_requests():
            if entry["channel"] == "uspeedo.sms":
                for phone in entry["ids"]:
                    out.setdefault(str(phone).lstrip("+"), float(entry["t"]))
        return out

    arrived = poll(lambda: (s := singles()).keys() >= enqueued.keys() and s, 60, "the singles")
    campaign_times = sorted(
        float(e["t"]) for e in stack.sim_requests() if e["channel"] == "nxcloud.sms"
    )
    for phone, t0 in enqueued.items():
        between = [t for t in campaign_times if t0 < t < arrived[phone]]
        # At once, not after the campaign: a handful of its 30 requests at most (a loaded
        # machine delays a wake-up by a request or two; a process held for the campaign's
        # slots, as before, made the singles wait for most of them).
        assert len(between) <= 6, (phone, arrived[phone] - t0, len(between))
    assert not job_status(big, cfg=stack.cfg).done  # the singles left while it ran
    stack.wait_done([big], timeout=150)
    assert len(nx_times(stack)) == 300


@pytest.mark.timeout(240)
def test_high_priority_singles_pass_a_saturating_campaign(
    make_stack: Callable[..., Stack],
) -> None:
    """At 2 requests/s of 10, a 400-message campaign saturates the account for ~20 s.
    A high-priority single is claimed at the next claim after it arrives, so only requests
    already booked when it came reach the provider between its enqueue and its arrival: the
    one in flight and those parked ahead (one, or two when a late wake-up booked the next
    slot before its own left: a loaded machine makes wake-ups late)."""
    stack = make_stack(["--seed", "12"])
    stack.configure("nxcloud", max_requests_per_second=2, max_batch=10, linger_ms=0)
    stack.worker(concurrency=DEFAULT_CONCURRENCY, beat=True)
    big = campaign(stack, 400)
    poll(lambda: len(nx_times(stack)) >= 20, 60, "the campaign under way")
    singles: dict[str, float] = {}
    for k in range(6):
        t0 = time.time()
        job = enqueue_stream(
            "nxcloud",
            [{"phone": f"+86138{k:08d}", "content": f"code {k}"}],
            priority="high",
            cfg=stack.cfg,
        )
        singles[f"{job.job_id}-0"] = t0
        time.sleep(1.3)  # pacing the producer, not synchronising with the worker
    arrived = poll(lambda: (s := nx_times(stack)).keys() >= singles.keys() and s, 60, "singles")
    requests = sorted(
        float(e["t"])
        for e in stack.sim_requests()
        if e["channel"] == "nxcloud.sms" and not singles.keys() & set(e["ids"])
    )
    for message_id, t0 in singles.items():
        ahead = [t for t in requests if t0 < t < arrived[message_id]]
        # Of the campaign's 40 requests, only a few booked before the single came (the bound
        # leaves room for late wake-ups on a loaded machine; behind the campaign it would be
        # most of them).
        assert len(ahead) <= 6, (message_id, arrived[message_id] - t0, len(ahead))
    assert not job_status(big, cfg=stack.cfg).done
    stack.wait_done([big], timeout=150)


@pytest.mark.timeout(240)
def test_expiry_of_queued_deferred_and_retrying_messages(
    make_stack: Callable[..., Stack],
) -> None:
    """Three jobs with a 3 s time to live: one queued behind a rate limit (1 request/s of
    10), one recipient held by its cap (a number sent to just before: deferred for 10 s),
    and one on a provider answering 503 (retrying with backoff). Every message ends ``sent`` or
    ``expired``, and the simulator received none after its expiry (plus the moment between
    the last check and the write, 0.25 s)."""
    ttl = 3.0
    stack = make_stack(["--seed", "13", "--fail-rate", "volc.vms.append=1.0"])
    stack.configure("nxcloud", max_requests_per_second=1, max_batch=10, linger_ms=0)
    stack.configure("uspeedo", linger_ms=0, recipient_caps=[[1, "10s"]])
    stack.configure("volc-vms", linger_ms=0, backoff_base_s=0.5, max_attempts=50)
    stack.worker(concurrency=DEFAULT_CONCURRENCY, beat=True)
    held = {
        "phone": "+447911199999",
        "template_id": "T100",
        "sender_id": "ACME",
        "template_params": ["1"],
    }
    first = enqueue_stream("uspeedo", [held], cfg=stack.cfg).job_id
    stack.wait_done([first], timeout=60)  # sent: its cap is used for 10 s (> the ttl)
    started = time.time()
    queued = campaign(stack, 100, ttl_s=ttl)
    deferred = enqueue_stream("uspeedo", [held], ttl_s=ttl, cfg=stack.cfg).job_id
    retrying = enqueue_stream(
        "volc-vms",
        [{"phone": f"+86138000{k:05d}"} for k in range(3)],
        defaults={"task_open_id": "sim-task-1"},
        ttl_s=ttl,
        cfg=stack.cfg,
    ).job_id
    stored = time.time()
    stack.wait_done([queued, deferred, retrying], timeout=90)
    expires_by = stored + ttl  # each job's expiry is at most this (its start is earlier)
    for job_id in (queued, deferred, retrying):
        counts = job_status(job_id, cfg=stack.cfg).counts
        assert set(counts) <= {"sent", "expired"}, (job_id, counts)
    assert job_status(queued, cfg=stack.cfg).counts.get("expired", 0) > 0
    assert job_status(first, cfg=stack.cfg).counts == {"sent": 1}
    assert job_status(deferred, cfg=stack.cfg).counts == {"expired": 1}
    assert job_status(retrying, cfg=stack.cfg).counts == {"expired": 3}
    log = stack.sim_requests()
    late = [e for e in log if e["ids"] and float(e["t"]) > expires_by + 0.25]
    assert not late, [(e["channel"], e["t"] - started) for e in late[:5]]
    # The retrying job was tried (and refused) before it expired: the retries were real.
    assert any(e["channel"] == "volc.vms.append" and e["http_status"] == 503 for e in log)
