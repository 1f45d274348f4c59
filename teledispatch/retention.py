"""Retention: finished jobs older than a cutoff are removed with their messages and outbox
events, in small batches (each its own short transaction), so dispatch runs at full speed
while a purge runs. A job still active, or with webhook events still to deliver, is kept."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy.engine import Engine

from teledispatch.db import attempts as attempts_db
from teledispatch.db import events as events_db
from teledispatch.db import jobs as jobs_db
from teledispatch.db import messages as messages_db

#: Rows per DELETE.
BATCH = 1000
#: Jobs looked at per read of the jobs table.
JOBS_PAGE = 200


@dataclass
class PurgeReport:
    jobs: list[str] = field(default_factory=list)
    messages: int = 0
    events: int = 0


def purgeable(engine: Engine, cutoff: float) -> list[tuple[str, int]]:
    """``(job id, total)`` of finished jobs created before ``cutoff`` with nothing pending."""
    found: list[tuple[str, int]] = []
    after = ""
    while True:
        with engine.connect() as conn:
            page = jobs_db.created_before(conn, cutoff, after, JOBS_PAGE)
            for job in page:
                # total 0: an old job whose enqueue died part-way is abandoned, and goes too.
                finished = messages_db.job_is_finished(conn, job.id, 0)
                if finished and events_db.pending_for_job(conn, job.id) == 0:
                    found.append((str(job.id), int(job.total)))
        if len(page) < JOBS_PAGE:
            return found
        after = str(page[-1].id)


def purge(engine: Engine, cutoff: float, *, dry_run: bool = False) -> PurgeReport:
    """Remove finished jobs created before ``cutoff`` (only list them with ``dry_run``)."""
    report = PurgeReport()
    for job_id, total in purgeable(engine, cutoff):
        report.jobs.append(job_id)
        if dry_run:
            report.messages += total
            continue
        # Messages first, the job row last: an interrupted purge leaves a job row that the
        # next purge finds and finishes, never rows without their job.
        attempts_db.delete_for_job(engine, job_id)
        while n := messages_db.delete_job_messages(engine, job_id, BATCH):
            report.messages += n
        while n := events_db.delete_job_events(engine, job_id, BATCH):
            report.events += n
        with engine.begin() as conn:
            jobs_db.delete_job(conn, job_id)
    return report


__all__ = ["BATCH", "PurgeReport", "purge", "purgeable"]
