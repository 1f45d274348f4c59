"""Outages of each kind through real workers: requests that time out, then connection
refused (the simulator stopped and started again on its port). Nothing fails, the account pauses
instead of retrying, and it is back at its full rate soon after the provider is.

Each outage is short (the 90-second one is in tests/chaos/test_outage_long.py); bounds are
generous: the machine is shared, and what is asserted is outcomes and counts."""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Callable

import pytest
import redis as redis_lib

from teledispatch import circuits
from teledispatch.dev.processes import cli_argv, spawn
from tests.integration.outage import (
    BATCH,
    RATE,
    backlog,
    counts,
    nx_sends,
    seconds_to_full_rate,
    set_faults,
)
from tests.support import Stack, poll

pytestmark = pytest.mark.integration

OUTAGE_S = 8.0
PROBE_MAX_S = 2.0
#: How late after recovery the full rate may come: the probe wait, then generous room for a
#: loaded machine; far below the default probe ceiling (30 s) the account would otherwise wait.
RECOVERY_BOUND_S = PROBE_MAX_S + 15.0


def configure(stack: Stack, **extra: object) -> None:
    stack.configure(
        "nxcloud",
        max_batch=BATCH,
        max_requests_per_second=RATE,
        circuit_failures=2,
        circuit_probe_max_s=PROBE_MAX_S,
        **extra,
    )


def _up(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/_sim/requests", timeout=2) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


@pytest.mark.timeout(400)
def test_timeouts_then_refused_connections_fail_nothing_and_recover_at_full_rate(
    make_stack: Callable[..., Stack],
) -> None:
    """One stack, two outages: requests that time out, then the simulator stopped and
    started again on its port (the same seed: the same credentials)."""
    stack = make_stack(["--seed", "8"])
    configure(stack, timeout_s=1.0)
    client = redis_lib.Redis.from_url(stack.env["REDIS_URL"])
    paused = lambda: circuits.view(client, "nxcloud").paused  # noqa: E731

    # Timeouts: every request held 3 s unanswered (the account gives up after 1 s).
    set_faults(stack, timeout_rate=1.0, timeout_ms=3000)
    jobs = backlog(stack, 150)
    stack.worker(concurrency=2, beat=True)
    poll(paused, 60, "the circuit to open on timeouts")
    opened_at = time.time()
    time.sleep(OUTAGE_S)  # the outage itself: what happens meanwhile is asserted below
    recovered_at = time.time()
    set_faults(stack, timeout_rate=0)
    during = [r for r in nx_sends(stack) if opened_at <= r["t"] < recovered_at]
    # Probes only: about one per PROBE_MAX_S, not a batch per backoff.
    assert len(during) <= OUTAGE_S / PROBE_MAX_S * 2 + 4, len(during)
    stack.wait_done(jobs, timeout=180)
    final = counts(stack, jobs)
    assert "failed" not in final and set(final) <= {"sent", "unknown"}, final
    assert seconds_to_full_rate(nx_sends(stack), recovered_at) < RECOVERY_BOUND_S

    # Connection refused: the provider's process is gone.
    simulator = stack.procs[0]
    port = stack.sim_url.rsplit(":", 1)[1]
    simulator.stop()
    simulator.killed = True  # its exit is the outage under test, not a failure
    jobs = backlog(stack, 150, first=1000)
    poll(paused, 60, "the circuit to open on refused connections")
    time.sleep(OUTAGE_S)
    assert "failed" not in counts(stack, jobs)
    argv = cli_argv("simulate", "--port", port, "--seed", "8")
    stack.procs.append(spawn("simulator-2", argv, stack.env, stack.workdir / "sim2.log"))
    poll(lambda: _up(stack.sim_url), 30, "the simulator to listen again")
    recovered_at = time.time()
    stack.wait_done(jobs, timeout=180)
    assert set(counts(stack, jobs)) == {"sent"}
    assert seconds_to_full_rate(nx_sends(stack), recovered_at) < RECOVERY_BOUND_S
