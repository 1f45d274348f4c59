"""The fault runs: a provider answering 503 for a while (``outage``, both systems) and a
route failing over to its second provider while the first is down (``failover``).

From the simulator's request log: what the providers saw, not what the workers believed.
"""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path
from typing import Any

from bench.runs import Shape, _guarded, _timeout
from bench.stack import RunFailed, Stack, System, open_stack

#: The outage run's account pace (teledispatch) and message count (both).
OUTAGE_RPS = 10
OUTAGE_BATCH = 20


def _sim_faults(stack: Stack, **faults: Any) -> None:
    body = json.dumps({"channel": "nxcloud.sms", **faults}).encode()
    request = urllib.request.Request(
        stack.sim_url + "/_sim/faults", body, {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as resp:
        if resp.status != 200:
            raise RunFailed(f"the simulator refused faults {faults}: HTTP {resp.status}")


def _failed_count(stack: Stack) -> int:
    table = "messages" if stack.system == "teledispatch" else "baseline_outcomes"
    with stack.engine.connect() as conn:
        return int(
            conn.exec_driver_sql(
                f"SELECT count(*) FROM {table} WHERE status = 'failed'"
            ).scalar_one()
        )


def seconds_to_full_rate(times: list[float], recovered_at: float) -> float | None:
    """From ``recovered_at`` to the start of the first 1-s window holding 80 % of the busiest
    1-s window's accepted requests after recovery (each system's own full rate)."""
    after = sorted(t for t in times if t >= recovered_at)
    if not after:
        return None
    windows = [sum(1 for x in after[i:] if x < t + 1.0) for i, t in enumerate(after)]
    full = max(windows)
    first = next(i for i, n in enumerate(windows) if n >= 0.8 * full)
    return after[first] - recovered_at


def outage(system: System, seconds: float, n: int, shape: Shape) -> dict[str, Any]:
    """NXCloud answers every request 503 for ``seconds``, then is healthy again; ``n``
    messages enqueued before the workers start. teledispatch: its defaults (circuit on,
    5 attempts), 20 per request at 10 requests/s; the baseline: one message per request,
    ``autoretry_for`` with ``retry_backoff``, 5 retries."""

    def run() -> dict[str, Any]:
        if system == "teledispatch":
            account: dict[str, Any] = {
                "linger_ms": shape.linger_ms,
                "max_batch": OUTAGE_BATCH,
                "max_requests_per_second": OUTAGE_RPS,
            }
        else:
            account = {}
        with open_stack(system, "postgresql", account=account) as stack:
            _sim_faults(stack, fail_rate=1.0, fail_status=503)
            stack.start_producer("bulk", n).result(_timeout(n))
            stack.start_workers(shape.workers, shape.concurrency)
            began = time.time()
            time.sleep(seconds)
            recovered_at = time.time()
            _sim_faults(stack, fail_rate=0)
            done, _ = stack.wait_outcomes(n, _timeout(n) + 120, partial_ok=True)
            log = stack.sim_get("/_sim/requests")
            failed = _failed_count(stack)
        nx = [e for e in log if e.get("channel") == "nxcloud.sms"]
        accepted = [float(e["t"]) for e in nx if e.get("accepted")]
        return {
            "n": n,
            "outcomes": done,
            "outage_s": seconds,
            "requests_during_outage": sum(1 for e in nx if began <= e["t"] < recovered_at),
            "failed": failed,
            "recovery_to_first_s": (min(accepted) - recovered_at) if accepted else None,
            "recovery_to_full_rate_s": seconds_to_full_rate(accepted, recovered_at),
            # The probe schedule (a setting) decides when recovery is seen; from then on the
            # backlog must be at full rate within a couple of seconds (#14).
            "first_to_full_rate_s": (
                seconds_to_full_rate(accepted, min(accepted)) if accepted else None
            ),
            "requests_total": len(nx),
        }

    return _guarded(system, run)


#: The failover run's route: NXCloud first, USpeedo (a template) second.
FAILOVER_ROUTE = """
[routes.sms]
accounts = ["nxcloud", "uspeedo"]

[routes.sms.uspeedo]
template_id = "T100"
sender_id = "ACME"
"""


def failover(n: int, shape: Shape) -> dict[str, Any]:
    """A routed job of ``n`` recipients while NXCloud answers every request 503: seconds from
    the workers' first request to NXCloud to the first message USpeedo accepted, and until
    every message was accepted; each message accepted by exactly one provider, none failed.
    teledispatch only: the baseline has no second provider to fail over to."""

    def run() -> dict[str, Any]:
        # The circuit's defaults: it opens after 5 failed requests.
        account = {"linger_ms": shape.linger_ms, "max_batch": OUTAGE_BATCH}
        with open_stack("teledispatch", "postgresql", account=account) as stack:
            config = Path(stack.env["TELEDISPATCH_CONFIG"])
            config.write_text(config.read_text() + FAILOVER_ROUTE)
            _sim_faults(stack, fail_rate=1.0, fail_status=503)
            stack.start_producer("route", n).result(_timeout(n))
            stack.start_workers(shape.workers, shape.concurrency)
            done, _ = stack.wait_outcomes(n, _timeout(n) + 120, partial_ok=True)
            log = stack.sim_get("/_sim/requests")
            failed = _failed_count(stack)
        nx = [e for e in log if e.get("channel") == "nxcloud.sms"]
        us = [e for e in log if e.get("channel") == "uspeedo.sms"]
        us_ok = sorted(float(e["t"]) for e in us if e.get("accepted"))
        phones = [p for e in us for p in e.get("accepted", ())]
        began = min((float(e["t"]) for e in nx), default=None)
        return {
            "n": n,
            "outcomes": done,
            "failed": failed,
            "requests_to_down": len(nx),
            "accepted_by_down": sum(len(e.get("accepted", ())) for e in nx),
            "accepted": len(phones),
            "accepted_twice": len(phones) - len(set(phones)),
            "to_first_failover_s": us_ok[0] - began if us_ok and began else None,
            "to_all_failed_over_s": us_ok[-1] - began if us_ok and began else None,
        }

    return _guarded("teledispatch", run)
