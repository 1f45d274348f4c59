"""Cancelling a job: what no worker has claimed yet becomes ``cancelled``; the rest finishes.

Messages already claimed are in flight to the provider and cannot be called back, so they are
left to end as they will; parts of a big job stored after the cancel are written as
``cancelled`` because the job row says so.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from teledispatch.config import Settings, settings
from teledispatch.db import jobs as jobs_db
from teledispatch.db import messages as messages_db
from teledispatch.db.engine import get_engine
from teledispatch.producer.lookup import JobNotFound


@dataclass(frozen=True)
class Cancelled:
    job_id: str
    #: Messages moved to ``cancelled`` by this call.
    cancelled: int


def cancel_job(job_id: str, *, cfg: Settings | None = None) -> Cancelled:
    engine = get_engine((cfg or settings()).database_url)
    now = time.time()
    with engine.begin() as conn:
        if not jobs_db.mark_cancelled(conn, job_id, now):
            raise JobNotFound(f"no job {job_id!r}")
        n = messages_db.cancel_unclaimed(conn, job_id, now)
    return Cancelled(job_id, n)
