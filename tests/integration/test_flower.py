"""Flower started by ``teledispatch flower`` sees the project's worker and tasks, and no secret.

Real processes: a private redis-server, the simulator, one worker and Flower. Flower only
learns of task events sent while it listens, so it is started (and answering) before the
worker, and every wait polls with a deadline.
"""

from __future__ import annotations

import base64
import json
import tomllib
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest

from teledispatch.dev.processes import cli_argv, spawn
from teledispatch.dev.redis import free_port
from teledispatch.producer.submit import enqueue_stream
from tests.support import Stack, poll

pytestmark = pytest.mark.integration

AUTH = "ops:flower-test-pw"
PREFIX = "flower"


def _get(url: str, timeout: float = 10.0) -> tuple[int, str]:
    request = urllib.request.Request(url)
    token = base64.b64encode(AUTH.encode()).decode()
    request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            return int(resp.status), resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")
    except (urllib.error.URLError, OSError):
        return 0, ""


def _start_flower(stack: Stack) -> str:
    """Flower under the forwarded --url_prefix and basic auth, answering; its base URL."""
    port = free_port()
    base = f"http://127.0.0.1:{port}/{PREFIX}"
    # --url_prefix is not an option of `teledispatch flower`: it must be forwarded to Flower,
    # and FLOWER_BASIC_AUTH must reach it through the environment.
    flower = spawn(
        "flower",
        cli_argv("flower", "--port", str(port), "--address", "127.0.0.1", f"--url_prefix={PREFIX}"),
        {**stack.env, "FLOWER_BASIC_AUTH": AUTH},
        stack.workdir / "flower.log",
    )
    stack.procs.append(flower)

    def flower_up() -> bool:
        assert flower.alive(), f"flower exited:\n{flower.tail()}"
        return _get(f"{base}/healthcheck", 2.0)[0] == 200

    poll(flower_up, 60, "Flower's /healthcheck under the forwarded --url_prefix")
    return base


def _tasks(base: str, query: str = "") -> dict[str, Any] | None:
    status, body = _get(f"{base}/api/tasks{query}", 15.0)
    if status != 200:
        return None
    tasks: dict[str, Any] = json.loads(body)
    return tasks


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_flower_shows_worker_and_task_names_without_secrets(
    make_stack: Callable[..., Stack],
) -> None:
    stack = make_stack()
    base = _start_flower(stack)
    stack.worker(concurrency=2, beat=True, name="fw")

    def worker_listed() -> list[str]:
        status, body = _get(f"{base}/api/workers?refresh=1", 15.0)
        if status != 200:
            return []
        return [name for name in json.loads(body) if name.startswith("fw-")]

    assert poll(worker_listed, 60, "the worker in /api/workers")

    phones = [f"+8613900{i:06d}" for i in range(3)]
    job = enqueue_stream(
        "nxcloud", [{"phone": p} for p in phones], defaults={"content": "hi"}, cfg=stack.cfg
    )
    stack.wait_done([job.job_id], timeout=90)

    def served_the_job() -> tuple[dict[str, Any], str] | None:
        status, body = _get(f"{base}/api/tasks", 15.0)
        if status != 200:
            return None
        tasks: dict[str, Any] = json.loads(body)
        done = [
            t
            for t in tasks.values()
            if t.get("name") == "dispatch.nxcloud.sms" and job.job_id in str(t.get("result"))
        ]
        return (tasks, body) if done else None

    tasks, raw = poll(served_the_job, 60, f"a dispatch naming job {job.job_id} in /api/tasks")

    dispatches = [t for t in tasks.values() if t.get("name") == "dispatch.nxcloud.sms"]
    assert any("nxcloud" in str(t.get("args")) for t in dispatches), dispatches
    served = [t for t in dispatches if job.job_id in str(t.get("result"))]
    assert all(t["state"] == "SUCCESS" and "'sent': 3" in str(t["result"]) for t in served), served
    # The every-second sweep ran all along (beat) but sends no events: not one row of it.
    names = {t.get("name") for t in tasks.values()}
    assert "maintenance.sweep" not in names, sorted(n for n in names if n)

    config = tomllib.loads((stack.workdir / "teledispatch.toml").read_text())
    secrets = [a["secret"] for a in config["accounts"].values() if a.get("secret")]
    assert secrets, "the simulator's config has no secret to look for"
    for secret in secrets:
        assert secret not in raw, "an account secret appears in Flower's /api/tasks"
    for phone in phones:
        assert phone not in raw and phone[1:] not in raw, "a recipient list reached Flower"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_flower_shows_failed_requests_during_a_provider_outage(
    make_stack: Callable[..., Stack],
) -> None:
    """Every request fails (the simulator answers 503): Flower's Failed list shows the
    dispatches, naming the account, the job and the failed requests."""
    stack = make_stack()
    request = urllib.request.Request(
        stack.sim_url + "/_sim/faults",
        data=json.dumps({"channel": "nxcloud.sms", "fail_rate": 1.0}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as resp:
        assert resp.status == 200
    base = _start_flower(stack)
    stack.worker(concurrency=2, beat=True, name="fo")
    job = enqueue_stream(
        "nxcloud",
        [{"phone": f"+8613900{i:06d}"} for i in range(4)],
        defaults={"content": "hi"},
        cfg=stack.cfg,
    )

    def failures_shown() -> list[dict[str, Any]]:
        tasks = _tasks(base, "?state=FAILURE") or {}
        return [
            t
            for t in tasks.values()
            if t.get("name") == "dispatch.nxcloud.sms" and job.job_id in str(t.get("exception"))
        ]

    failed = poll(failures_shown, 90, f"a FAILURE dispatch naming job {job.job_id} in Flower")
    text = str(failed[0]["exception"])
    assert text.startswith("RequestsFailed('1 of 1 requests failed (retryable=1)"), text
    assert "account=nxcloud" in text and f"{job.job_id}=4" in text, text
