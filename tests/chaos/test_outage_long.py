"""The slow outage runs (``make chaos``): NXCloud answering 503 for 90 seconds, and workers
``kill -9``ed while a route fails over from NXCloud to USpeedo."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
import redis as redis_lib
import sqlalchemy as sa

from teledispatch import circuits
from teledispatch.config import load_settings
from teledispatch.db.engine import get_engine
from teledispatch.db.tables import messages_table
from teledispatch.producer.jobs import SendJob
from teledispatch.producer.submit import enqueue_job
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

OUTAGE_S = 90.0
PROBE_MAX_S = 3.0


@pytest.mark.chaos
@pytest.mark.timeout(420)
# One long run, on PostgreSQL; the short outages run on both databases.
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_90_second_outage_fails_nothing_and_recovers_at_full_rate(
    make_stack: Callable[..., Stack], database_url: str
) -> None:
    stack = make_stack(["--seed", "9"])
    stack.configure(
        "nxcloud",
        max_batch=BATCH,
        max_requests_per_second=RATE,
        circuit_failures=3,
        circuit_probe_max_s=PROBE_MAX_S,
    )
    set_faults(stack, fail_rate=1.0, fail_status=503)
    jobs = backlog(stack, 200)
    stack.worker(concurrency=2, beat=True)
    started = time.time()
    client = redis_lib.Redis.from_url(stack.env["REDIS_URL"])
    poll(lambda: circuits.view(client, "nxcloud").paused, 60, "the circuit to open")
    time.sleep(max(0.0, started + OUTAGE_S - time.time()))
    assert "failed" not in counts(stack, jobs)
    recovered_at = time.time()
    set_faults(stack, fail_rate=0)
    during = [r for r in nx_sends(stack) if r["t"] < recovered_at]
    # The threshold's failures, then one probe per PROBE_MAX_S at most: a few dozen.
    assert len(during) < 48, f"{len(during)} requests during a {OUTAGE_S:.0f}s outage"
    stack.wait_done(jobs, timeout=180)
    assert set(counts(stack, jobs)) == {"sent"}
    # The probe wait, then generous room for a loaded machine (the figure is the bench's).
    assert seconds_to_full_rate(nx_sends(stack), recovered_at) < PROBE_MAX_S + 15.0


ROUTE = """
[routes.sms]
accounts = ["nxcloud", "uspeedo"]

[routes.sms.uspeedo]
template_id = "T100"
sender_id = "ACME"
"""
N = 1500


@pytest.mark.chaos
@pytest.mark.timeout(420)
# The move's compare-and-set is the same statement on both databases: one run.
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_kill_9_during_failover_loses_and_duplicates_nothing(
    make_stack: Callable[..., Stack], database_url: str
) -> None:
    stack = make_stack(["--seed", "10", "--latency-ms", "nxcloud.sms=200"])
    stack.configure("nxcloud", max_batch=20, circuit_failures=2)
    path = Path(stack.env["TELEDISPATCH_CONFIG"])
    path.write_text(path.read_text() + ROUTE)
    stack.cfg = load_settings(path)
    phones = [f"+86139{i:08d}" for i in range(N)]
    job = SendJob(route="sms", recipients=[{"phone": p} for p in phones], defaults={"content": "x"})
    job_id = enqueue_job(job, cfg=stack.cfg).job_id
    workers = [stack.worker(concurrency=3, beat=True, name="w0"), stack.worker(name="w1")]
    # NXCloud goes down once some messages have left through it: the rest fail over while
    # the workers are killed and restarted.
    poll(lambda: any(r["accepted"] for r in nx_sends(stack)), 60, "NXCloud to send some")
    set_faults(stack, fail_rate=1.0, fail_status=503)
    for round_ in range(4):
        time.sleep(1.5)
        for i, proc in enumerate(workers):
            proc.kill()
            workers[i] = stack.worker(concurrency=3, beat=(i == 0), name=f"w{i}-{round_}")
    stack.wait_done([job_id], timeout=240)
    m = messages_table.c
    with get_engine(stack.cfg.database_url).connect() as conn:
        rows = conn.execute(
            sa.select(m.id, m.phone, m.status, m.error_code, m.account).where(m.job_id == job_id)
        ).all()
    assert len(rows) == N
    for row in rows:
        final_unknown = row.status == "unknown" and row.error_code == "unreconciled"
        assert row.status in {"sent", "failed"} or final_unknown, tuple(row)
    phone_of = {row.id: row.phone.lstrip("+") for row in rows}
    accepted: Counter[str] = Counter()
    for r in stack.sim_requests():
        if r["channel"] == "nxcloud.sms":
            accepted.update(phone_of[i] for i in r["accepted"] if i in phone_of)
        elif r["channel"] == "uspeedo.sms":
            accepted.update(r["accepted"])
    twice = [p for p, n in accepted.items() if n > 1]
    assert not twice, f"{len(twice)} messages accepted twice, e.g. {twice[:3]}"
    sent = [row for row in rows if row.status == "sent"]
    assert {phone_of[row.id] for row in sent} <= set(accepted)
    assert {row.account for row in sent} == {"nxcloud", "uspeedo"}
