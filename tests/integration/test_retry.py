"""Retrying failed messages through real workers and the simulator, over the API: the
retries go out once, linked to the originals; asking again sends nothing more."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from teledispatch.api.auth import API_KEYS_ENV, hash_key
from teledispatch.producer.lookup import job_messages
from teledispatch.producer.submit import enqueue_stream
from tests.support import Stack, poll

pytestmark = pytest.mark.integration

KEY = "retry-key-5d1e"
N = 6


def set_faults(stack: Stack, **faults: Any) -> None:
    body = json.dumps({"channel": "nxcloud.sms", **faults}).encode()
    request = urllib.request.Request(
        stack.sim_url + "/_sim/faults", body, {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as resp:
        assert resp.status == 200


def _done(client: httpx.Client, job_id: str) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        body: dict[str, Any] = client.get(f"/v1/jobs/{job_id}").json()
        return body if body["done"] else None

    result: dict[str, Any] = poll(done, 120, f"job {job_id} done")
    return result


@pytest.mark.timeout(300)
def test_failed_messages_are_retried_once_over_the_api(
    make_stack: Callable[..., Stack],
) -> None:
    stack = make_stack()
    set_faults(stack, item_fail_rate=1.0)
    _, base = stack.api(extra_env={API_KEYS_ENV: hash_key(KEY)})
    phones = [f"+861390001{i:04d}" for i in range(N)]
    job_id = enqueue_stream(
        "nxcloud", [{"phone": p} for p in phones], defaults={"content": "again"}, cfg=stack.cfg
    ).job_id
    stack.worker(concurrency=2, beat=True, name="rw")
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {KEY}"}, timeout=30) as c:
        first = _done(c, job_id)
        assert first["counts"] == {"failed": N}
        set_faults(stack, item_fail_rate=0.0)
        answer = c.post(f"/v1/jobs/{job_id}/retry", json={"statuses": ["failed"]})
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"job_id": job_id, "retried": N, "skipped": []}
        after = _done(c, job_id)
        assert after["total"] == 2 * N
        assert after["counts"] == {"failed": N, "sent": N}
        again = c.post(f"/v1/jobs/{job_id}/retry").json()
        assert again["retried"] == 0 and again["skipped"][0]["count"] == N
        assert c.post("/v1/jobs/nope/retry").status_code == 404
    views = job_messages(job_id, limit=100, cfg=stack.cfg)
    originals = {v.id: v for v in views if v.retry_of is None}
    retries = [v for v in views if v.retry_of is not None]
    assert sorted(v.retry_of or "" for v in retries) == sorted(originals)
    assert all(v.status == "sent" and v.phone == originals[v.retry_of or ""].phone for v in retries)
    # Every message, first or retry, went to the provider exactly once.
    sends = [r for r in stack.sim_requests() if r["channel"] == "nxcloud.sms"]
    assert sorted(i for r in sends for i in r["ids"]) == sorted(v.id for v in views)
