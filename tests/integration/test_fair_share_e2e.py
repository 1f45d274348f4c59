"""Fair share, lanes and the ETA through real workers, asserted on what the simulator received
(the order messages arrived in), never on how long anything took."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import httpx
import pytest

from teledispatch.api.auth import API_KEYS_ENV, hash_key
from teledispatch.producer.lookup import job_status
from teledispatch.producer.submit import enqueue_stream
from tests.support import Stack, poll

pytestmark = pytest.mark.integration

#: Small limits keep each run short: 40 messages/s in requests of 10.
RATE = 40
BATCH = 10
API_KEY = "fair-share-key-5d1e"


def limited(stack: Stack) -> None:
    stack.configure("nxcloud", max_messages_per_second=RATE, max_batch=BATCH)


def campaign(stack: Stack, first: int, n: int, **options: Any) -> str:
    job = enqueue_stream(
        "nxcloud",
        ({"phone": f"+86139{first + i:08d}"} for i in range(n)),
        defaults={"content": "campaign"},
        cfg=stack.cfg,
        **options,
    )
    return job.job_id


def arrivals(stack: Stack) -> list[str]:
    """Job id of each message the simulator received, in arrival order."""
    requests = sorted(
        (r for r in stack.sim_requests() if r["channel"] == "nxcloud.sms"), key=lambda r: r["t"]
    )
    return [i.rsplit("-", 1)[0] for r in requests for i in r["ids"]]


@pytest.mark.timeout(240)
def test_two_campaigns_share_the_account_while_both_are_active(
    make_stack: Callable[..., Stack],
) -> None:
    """A campaign enqueued while another is being sent gets half the account from then on:
    both progress, and the second finishes first (it is smaller), not after the first."""
    stack = make_stack(["--seed", "13"])
    limited(stack)
    stack.worker(concurrency=4, beat=True)
    first = campaign(stack, 0, 400)
    poll(lambda: len(arrivals(stack)) >= 40, 60, "the first campaign under way")
    second = campaign(stack, 10_000, 120)
    stack.wait_done([first, second], timeout=150)
    order = arrivals(stack)
    assert sorted(order) == sorted([first] * 400 + [second] * 120)  # each once
    start = order.index(second)
    end = len(order) - order[::-1].index(second)
    window = order[start:end]
    share = window.count(second) / len(window)
    # Equal weights: about half of what left while both were active. Without the fair share
    # the second's rows (due after every row of the first) waited for all of the first.
    assert 0.35 <= share <= 0.65, f"second campaign's share {share:.2f} of {len(window)}"
    assert end < len(order), "the smaller campaign finished first"


@pytest.mark.timeout(240)
def test_low_waits_for_normal(make_stack: Callable[..., Stack]) -> None:
    """A low job enqueued first still waits: only what normal leaves goes to low."""
    stack = make_stack(["--seed", "14"])
    limited(stack)
    low = campaign(stack, 0, 60, priority="low")
    normal = campaign(stack, 10_000, 200)
    stack.worker(concurrency=4, beat=True)
    stack.wait_done([low, normal], timeout=150)
    order = arrivals(stack)
    assert order.count(low) == 60 and order.count(normal) == 200
    # Claims are made ahead of their rate slots by concurrent processes, so the last few
    # normal requests may leave beside the first low ones; never more than one claim each.
    after_first_low = order[order.index(low) :].count(normal)
    assert after_first_low <= 4 * BATCH, f"{after_first_low} normal messages after a low one"


@pytest.mark.timeout(240)
def test_eta_of_a_rate_limited_job_follows_the_limits(make_stack: Callable[..., Stack]) -> None:
    """Before any worker runs nothing moves, so the ETA is exactly what the limits say: the
    smaller of two campaigns finishes at twice its size over the rate (it has half of it),
    the bigger at both sizes over the rate; the API serves the same estimate."""
    stack = make_stack(["--seed", "15"])
    limited(stack)
    with (stack.workdir / "teledispatch.toml").open("a", encoding="utf-8") as fh:
        fh.write(f'\n[api]\nkeys = ["{hash_key(API_KEY)}"]\n')
    big = campaign(stack, 0, 300)
    small = campaign(stack, 10_000, 100)
    now = time.time()

    def eta(job_id: str) -> float:
        st = job_status(job_id, cfg=stack.cfg, now=now)
        assert st.eta is not None
        return datetime.fromisoformat(st.eta).timestamp()

    assert eta(small) == pytest.approx(now + 2 * 100 / RATE)
    assert eta(big) == pytest.approx(now + 400 / RATE)
    _, base = stack.api(extra_env={API_KEYS_ENV: hash_key(API_KEY)})
    headers = {"Authorization": f"Bearer {API_KEY}"}
    before = time.time()
    body = httpx.get(f"{base}/v1/jobs/{small}", headers=headers, timeout=30).json()
    after = time.time()
    served = datetime.fromisoformat(body["eta"]).timestamp()
    assert before + 5 - 0.01 <= served <= after + 5 + 0.01
    # And the workers then send both, the small one first.
    stack.worker(concurrency=4, beat=True)
    stack.wait_done([big, small], timeout=150)
    order = arrivals(stack)
    assert len(order) - order[::-1].index(small) < len(order)
