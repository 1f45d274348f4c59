"""Cancelling a job: what no worker has claimed yet becomes ``cancelled``; the rest finishes.

Messages already claimed are in flight to the provider and cannot be called back, so they are
left to end as they will; parts still in transit are written as ``cancelled`` on arrival
because the job row says so.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import sqlalchemy as sa

from teledispatch.config import Settings, settings
from teledispatch.db.tables import (
    CANCELLED,
    DEFERRED,
    QUEUED,
    get_engine,
    jobs_table,
    messages_table,
)
from teledispatch.producer.lookup import JobNotFound


@dataclass(frozen=True)
class Cancelled:
    job_id: str
    #: Messages moved to ``cancelled`` by this call.
    cancelled: int


def cancel_job(job_id: str, *, cfg: Settings | None = None) -> Cancelled:
    engine = get_engine((cfg or settings()).database_url)
    now = time.time()
    m = messages_table.c
    with engine.begin() as conn:
        found = conn.execute(
            sa.update(jobs_table)
            .where(jobs_table.c.id == job_id)
            .values(cancelled_at=sa.func.coalesce(jobs_table.c.cancelled_at, now))
        ).rowcount
        if not found:
            raise JobNotFound(f"no job {job_id!r}")
        # The status condition is the compare-and-set: a row a worker claimed a moment ago is
        # SENDING and is not touched.
        n = conn.execute(
            sa.update(messages_table)
            .where(m.job_id == job_id, m.status.in_((QUEUED, DEFERRED)))
            .values(status=CANCELLED, updated_at=now, error_code=None, error_text=None)
        ).rowcount
    return Cancelled(job_id, int(n or 0))
