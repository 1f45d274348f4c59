"""The whole NXCloud slice through real processes, on SQLite and PostgreSQL (and once with
RabbitMQ as the broker)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import pytest
import sqlalchemy as sa

from teledispatch.db.engine import get_engine
from teledispatch.db.tables import messages_table
from teledispatch.producer.submit import enqueue_stream
from tests.support import Stack

pytestmark = pytest.mark.integration


# Once more on RabbitMQ as the Celery broker (Redis still holds limits and wake-up keys).
@pytest.mark.parametrize(
    ("database_url", "broker"),
    [("sqlite", "redis"), ("postgresql", "redis"), ("postgresql", "rabbitmq")],
    indirect=True,
)
def test_bulk_and_singles_with_faults_reach_one_terminal_state(
    make_stack: Callable[..., Stack],
) -> None:
    stack = make_stack(["--fail-rate", "0.15", "--item-fail-rate", "0.03", "--seed", "3"])
    # Random 503s, not an outage: no circuit, so every refused message spends its attempt.
    stack.configure("nxcloud", circuit_failures=0)
    stack.worker(concurrency=4, beat=True)
    bulk = enqueue_stream(
        "nxcloud",
        ({"phone": f"+86139{i:08d}"} for i in range(5000)),
        defaults={"content": "bulk"},
        cfg=stack.cfg,
    )
    singles = [
        enqueue_stream(
            "nxcloud", [{"phone": f"+1415555{i:04d}", "content": f"otp {i}"}], cfg=stack.cfg
        ).job_id
        for i in range(100)
    ]
    stack.wait_done([bulk.job_id, *singles], timeout=180)

    engine = get_engine(stack.cfg.database_url)
    m = messages_table.c
    with engine.connect() as conn:
        rows = conn.execute(sa.select(m.id, m.status, m.error_text, m.attempts)).all()
    assert len(rows) == 5100 and len({r.id for r in rows}) == 5100
    statuses = Counter(r.status for r in rows)
    assert set(statuses) <= {"sent", "failed"}, statuses

    log = stack.sim_requests()
    assert log, "the simulator saw no request"
    assert max(len(r["ids"]) for r in log) <= 200

    # 503s happened and their messages were retried to a definite outcome.
    refused = {i for r in log if r["http_status"] == 503 for i in r["ids"]}
    assert refused, "fault injection produced no 503"
    accepted_ids = Counter(i for r in log if r["http_status"] == 200 for i in r["accepted"])
    assert all(n == 1 for n in accepted_ids.values()), "a message was accepted twice"
    by_id = {r.id: r for r in rows}
    retried = [by_id[i] for i in refused if i in by_id]
    assert all(r.attempts >= 2 for r in retried if r.status == "sent")

    # Per-item failures carry the provider's own text.
    failed = [r for r in rows if r.status == "failed"]
    assert failed and all(r.error_text for r in failed)

    # The singles were coalesced: far fewer requests carried them than there were jobs.
    single_ids = {f"{j}-0" for j in singles}
    carrying = [r for r in log if single_ids.intersection(r["ids"])]
    assert len(carrying) < 50, f"{len(carrying)} requests for 100 single jobs"
    assert statuses["sent"] == len(accepted_ids)


def test_dropped_responses_are_reconciled_not_resent(make_stack: Callable[..., Stack]) -> None:
    """The simulator processes some requests and then drops the connection: those messages
    are settled by status query; none is accepted by the provider twice."""
    stack = make_stack(["--drop-response-rate", "0.2", "--seed", "5"])
    # 60 requests at 20 %: the chance that none is dropped is about one in a million.
    stack.configure("nxcloud", max_batch=50)
    stack.worker(concurrency=4, beat=True)
    job = enqueue_stream(
        "nxcloud",
        ({"phone": f"+86139{i:08d}"} for i in range(3000)),
        defaults={"content": "drop"},
        cfg=stack.cfg,
    )
    stack.wait_done([job.job_id], timeout=180)
    log = stack.sim_requests()
    sends = [r for r in log if r["channel"] == "nxcloud.sms"]
    assert any(r["dropped"] for r in sends), "no response was dropped"
    accepted = Counter(i for r in sends for i in r["accepted"])
    assert all(n == 1 for n in accepted.values()), "a message reached the provider twice"
    engine = get_engine(stack.cfg.database_url)
    m = messages_table.c
    with engine.connect() as conn:
        statuses = Counter(
            s for (s,) in conn.execute(sa.select(m.status).where(m.job_id == job.job_id))
        )
    assert statuses == {"sent": 3000}, statuses
    assert len(accepted) == 3000


def test_every_channel_reaches_terminal_states(make_stack: Callable[..., Stack]) -> None:
    """A job on each account the simulator writes, with faults on: signed requests are
    accepted, outcomes recorded, provider ids kept, nothing left in flight."""
    from pathlib import Path

    from teledispatch.dev.demo import channel_jobs
    from teledispatch.producer.lookup import job_status

    stack = make_stack(["--fail-rate", "0.1", "--item-fail-rate", "0.05", "--seed", "11"])
    stack.worker(concurrency=4, beat=True)
    jobs = {
        account: enqueue_stream(account, rows, cfg=stack.cfg).job_id
        for account, rows in channel_jobs(Path(stack.env["TELEDISPATCH_CONFIG"]), 200)
    }
    stack.wait_done(list(jobs.values()), timeout=120)
    log = stack.sim_requests()
    for account, job_id in jobs.items():
        st = job_status(job_id, cfg=stack.cfg)
        assert set(st.counts) <= {"sent", "failed"} and st.counts.get("sent"), (account, st)
        channel = stack.cfg.account(account).channel
        mine = [r for r in log if r["channel"] == channel]
        assert mine and all(r["http_status"] not in (401, 403) for r in mine), account
    engine = get_engine(stack.cfg.database_url)
    m = messages_table.c
    with engine.connect() as conn:
        missing_ids = conn.execute(
            sa.select(sa.func.count()).where(m.status == "sent", m.provider_id.is_(None))
        ).scalar_one()
    assert missing_ids == 0
