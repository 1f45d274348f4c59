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


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_flower_shows_worker_and_task_names_without_secrets(
    make_stack: Callable[..., Stack],
) -> None:
    stack = make_stack()
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
    unauth = urllib.request.Request(f"{base}/api/workers")
    with pytest.raises(urllib.error.HTTPError) as denied:
        urllib.request.urlopen(unauth, timeout=10)
    assert denied.value.code == 401, "FLOWER_BASIC_AUTH did not reach Flower"

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

    wanted = {"dispatch.nxcloud.sms", "maintenance.sweep"}

    def tasks_seen() -> tuple[dict[str, Any], str] | None:
        status, body = _get(f"{base}/api/tasks", 15.0)
        if status != 200:
            return None
        tasks: dict[str, Any] = json.loads(body)
        names = {t.get("name") for t in tasks.values()}
        return (tasks, body) if wanted <= names else None

    tasks, raw = poll(tasks_seen, 60, f"task names {sorted(wanted)} in /api/tasks")

    dispatches = [t for t in tasks.values() if t.get("name") == "dispatch.nxcloud.sms"]
    assert any("nxcloud" in str(t.get("args")) for t in dispatches), dispatches

    config = tomllib.loads((stack.workdir / "teledispatch.toml").read_text())
    secrets = [a["secret"] for a in config["accounts"].values() if a.get("secret")]
    assert secrets, "the simulator's config has no secret to look for"
    for secret in secrets:
        assert secret not in raw, "an account secret appears in Flower's /api/tasks"
    for phone in phones:
        assert phone not in raw and phone[1:] not in raw, "a recipient list reached Flower"
