"""Retention under load, through real processes on both databases: the worker's beat purges
an old finished job (in 1,000-row transactions) while it dispatches another job just as old
but still running. The running job loses nothing and every one of its messages is sent once;
the purged job is gone from every table that held it."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable

import pytest
import sqlalchemy as sa

from teledispatch.db import events as events_db
from teledispatch.db.engine import get_engine
from teledispatch.db.tables import batches_table, events_table, jobs_table, messages_table
from teledispatch.producer.submit import enqueue_stream
from tests.support import Stack, due_job, poll

pytestmark = pytest.mark.integration

OLD = 3000
RUNNING = 4000
DAY = 86400.0
m, j, e = messages_table.c, jobs_table.c, events_table.c


def _old_finished_job(url: str) -> sa.Engine:
    """Job ``j``: created at the epoch, every message sent, its webhook events delivered and
    its ``job.done`` written: nothing holds it back."""
    engine = due_job(url, OLD)
    now = time.time()
    with engine.begin() as conn:
        conn.execute(sa.update(messages_table).values(status="sent", provider_id=m.id))
        conn.execute(
            sa.update(jobs_table).values(callback_url="https://apps.example/h", done_at=now)
        )
        rows = conn.execute(sa.select(m.id, m.job_id, m.phone, m.status).limit(50)).all()
        events_db.insert_events(
            conn,
            {"j": ("nx", "https://apps.example/h")},
            [(*r, r.id, None, None) for r in rows],
            now,
        )
        conn.execute(sa.update(events_table).values(state=events_db.DELIVERED, delivered_at=now))
    return engine


def _rows(engine: sa.Engine, job_id: str) -> tuple[int, int, int]:
    with engine.connect() as conn:
        count = sa.select(sa.func.count())
        return (
            int(conn.execute(count.where(j.id == job_id)).scalar_one()),
            int(conn.execute(count.where(m.job_id == job_id)).scalar_one()),
            int(conn.execute(count.where(e.job_id == job_id)).scalar_one()),
        )


@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
def test_the_beat_purges_an_old_job_while_an_old_running_one_is_untouched(
    make_stack: Callable[..., Stack],
) -> None:
    stack = make_stack()
    engine = _old_finished_job(stack.cfg.database_url)
    assert _rows(engine, "j") == (1, OLD, 50)
    # Slow enough that the purge runs while it is being dispatched.
    stack.configure("nxcloud", max_messages_per_second=400)
    running = enqueue_stream(
        "nxcloud",
        ({"phone": f"+86139{i:08d}"} for i in range(RUNNING)),
        defaults={"content": "still going"},
        cfg=stack.cfg,
    ).job_id
    # Just as old as the purged one: only being active keeps it.
    with engine.begin() as conn:
        conn.execute(sa.update(jobs_table).where(j.id == running).values(created_at=0.0))
    stack.env["TELEDISPATCH_PURGE_S"] = "1"
    stack.worker(concurrency=3, beat=True)

    poll(lambda: _rows(engine, "j") == (0, 0, 0), 90, "the old job purged")
    # The purge came while the running job was still being sent: all its rows are there.
    with engine.connect() as conn:
        by_status: Counter[str] = Counter(
            dict(
                conn.execute(
                    sa.select(m.status, sa.func.count())
                    .where(m.job_id == running)
                    .group_by(m.status)
                ).all()
            )
        )
    assert sum(by_status.values()) == RUNNING, by_status
    assert by_status["queued"] + by_status["sending"] > 0, "the job finished before the purge"

    # It runs to the end: every recipient accepted by the provider exactly once. Then, old
    # and finished, the next purge takes it too.
    running_ids = {f"{running}-{i}" for i in range(RUNNING)}

    def accepted() -> Counter[str]:
        log = stack.sim_requests()
        return Counter(i for r in log if r["http_status"] == 200 for i in r["accepted"])

    poll(lambda: running_ids <= set(accepted()), 120, "the running job sent", every=1.0)
    assert all(accepted()[i] == 1 for i in running_ids)
    poll(lambda: _rows(engine, running) == (0, 0, 0), 60, "the finished job purged")
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(batches_table)).scalar() == 0
    get_engine(stack.cfg.database_url).dispose()
