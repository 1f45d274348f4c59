"""Worker metrics through real processes: a prefork worker started with ``--metrics-port``
serves the sum of what its pool processes recorded, checked against the simulator's own log."""

from __future__ import annotations

import os
import re
import socket
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable

import pytest

from teledispatch.dev.processes import cli_argv, spawn
from teledispatch.producer.submit import enqueue_stream
from tests.support import Stack

pytestmark = pytest.mark.integration

SIM_OUTCOMES = ("ok", "retryable")
_SAMPLE = re.compile(r"^(\w+)\{([^}]*)\} (\S+)$")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def scrape(url: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    with urllib.request.urlopen(url, timeout=5) as resp:
        text = resp.read().decode()
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if match:
            name, labels, value = match.groups()
            pairs = frozenset(
                (k, v.strip('"')) for k, _, v in (p.partition("=") for p in labels.split(","))
            )
            samples[(name, pairs)] = float(value)
    return samples


def total(
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    want = set(labels.items())
    return sum(v for (n, pairs), v in samples.items() if n == name and want <= pairs)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # metrics: DB-independent
def test_worker_serves_metrics_of_every_pool_process(make_stack: Callable[..., Stack]) -> None:
    stack = make_stack(["--fail-rate", "0.3", "--seed", "11"])
    # Small requests and fast retries: many requests, several outcomes, done in seconds.
    # No circuit: a run of the random 503s could open it, and a failure met while it is open
    # refunds its attempt, which the retries counter below would then not count.
    stack.configure(
        "nxcloud", max_batch=20, backoff_base_s=0.05, backoff_max_s=0.2, circuit_failures=0
    )
    port = free_port()
    metrics_dir = stack.workdir / "metrics"
    env = {**stack.env, "TELEDISPATCH_METRICS_DIR": str(metrics_dir)}
    argv = cli_argv(
        "worker",
        "--concurrency",
        "4",
        "--loglevel",
        "WARNING",
        "--hostname",
        f"metrics-{os.getpid()}@%h",
        "--beat",
        "--schedule",
        str(stack.workdir / ".beat-metrics"),
        "--metrics-port",
        str(port),
    )
    stack.procs.append(spawn("worker", argv, env, stack.workdir / "worker.log"))

    url = f"http://127.0.0.1:{port}/metrics"
    size = 300
    job = enqueue_stream(
        "nxcloud",
        ({"phone": f"+86139{i:08d}"} for i in range(size)),
        defaults={"content": "metrics"},
        cfg=stack.cfg,
    )
    stack.wait_done([job.job_id], timeout=60)

    # Outcomes are recorded before they are written, so they are in the value files by now;
    # the bounded poll covers only the server coming up.
    acct = {"channel": "nxcloud.sms", "account": "nxcloud"}
    deadline = time.monotonic() + 15
    while True:
        try:
            samples = scrape(url)
            finals = sum(
                total(samples, "teledispatch_messages_total", status=s, **acct)
                for s in ("sent", "failed", "unknown")
            )
            if finals >= size:
                break
        except (urllib.error.URLError, ConnectionError):
            samples, finals = {}, 0
        if time.monotonic() > deadline:
            logs = "\n".join(f"--- {p.name}\n{p.tail()}" for p in stack.procs)
            raise AssertionError(f"metrics incomplete ({finals}/{size}) at {url}:\n{logs}")
        time.sleep(0.2)

    # Every recipient got exactly one final outcome from a request.
    assert finals == size

    # Request outcomes match what the simulator answered.
    log = stack.sim_requests()
    answered = Counter(r["http_status"] for r in log)
    assert answered[503] > 0 and answered[200] > 0, answered
    outcomes = {
        o: total(samples, "teledispatch_requests_total", outcome=o, **acct) for o in SIM_OUTCOMES
    }
    assert outcomes == {"ok": answered[200], "retryable": answered[503]}
    requests = total(samples, "teledispatch_requests_total", **acct)
    assert requests == len(log)

    # One batch-size observation per request; every message in a request got one outcome.
    assert total(samples, "teledispatch_batch_size_count", **acct) == requests
    carried = total(samples, "teledispatch_batch_size_sum", **acct)
    assert carried == sum(len(r["ids"]) for r in log)
    assert carried == total(samples, "teledispatch_messages_total", **acct)
    assert total(samples, "teledispatch_batch_size_bucket", le="20.0", **acct) == requests
    assert total(samples, "teledispatch_provider_latency_seconds_count", **acct) == requests

    # Every message put back by a 503 was carried again by a later request.
    requeued = total(samples, "teledispatch_messages_total", status="queued", **acct)
    assert requeued > 0
    assert total(samples, "teledispatch_retries_total", **acct) == requeued

    # The pool processes wrote their own value files; the main process served their sum.
    assert list(metrics_dir.glob("counter_*.db")), "no pool process wrote a value file"
