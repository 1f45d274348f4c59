"""Retention: finished jobs older than their account's ``retention_days`` (or one cutoff for
all, ``db purge --older-than``) are removed with their messages and outbox events, in small
batches (each its own short transaction), and giving way to dispatch: while requests are in
flight, a purge works a fifth of the time and pauses the rest (:class:`Pace`).

Kept, whatever their age: a job with a message still being worked on, a job with webhook
events still to deliver, and a job with a callback whose ``job.done`` is not written yet.
Messages go first and the job row last, so an interrupted purge leaves a job row that the
next purge finishes, never rows without their job. (Batch leases belong to claims, and a
finished job has none; receipts are columns of its messages.)
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from teledispatch.config import Settings
from teledispatch.db import attempts as attempts_db
from teledispatch.db import events as events_db
from teledispatch.db import jobs as jobs_db
from teledispatch.db import messages as messages_db
from teledispatch.db.tables import AnyRow

#: Rows per DELETE.
BATCH = 1000
#: Jobs looked at per read of the jobs table.
JOBS_PAGE = 200
DAY_S = 86400.0
#: An account not (or no longer) in the config keeps its jobs this long.
DEFAULT_RETENTION_DAYS = 30.0
#: While dispatch is at work, a purge's batches take at most this share of its time: at
#: full speed a purge takes about a core of the database server (deletes, their WAL) from a
#: CPU-bound dispatch (figures: bench/README.md, "a purge that gives way").
BUSY_SHARE = 0.2
#: A busy sample paces the purge this long: ``busy`` is a snapshot, and between two of
#: dispatch's statements the database is briefly idle.
BUSY_MEMORY_S = 1.0

T = TypeVar("T")


@dataclass
class Pace:
    """How a purge gives way to dispatch: after each batch, if ``busy()`` (dispatch at work),
    a pause of ``(1 - share) / share`` times what the batch took; none when idle, so a purge
    of a quiet system runs at full speed."""

    busy: Callable[[], bool]
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    share: float = BUSY_SHARE
    _busy_until: float = field(default=float("-inf"), init=False)

    @classmethod
    def of(cls, engine: Engine) -> Pace:
        """Busy while dispatch is at work (:func:`~teledispatch.db.messages.dispatch_at_work`)."""
        return cls(busy=lambda: messages_db.dispatch_at_work(engine))

    def run(self, batch: Callable[[], T]) -> T:
        """``batch()``, then the pause it earned: paced if ``busy()`` now or within the
        last :data:`BUSY_MEMORY_S`."""
        started = self.clock()
        result = batch()
        now = self.clock()
        if self.busy():
            self._busy_until = now + BUSY_MEMORY_S
        if now < self._busy_until:
            self.sleep((now - started) * (1 - self.share) / self.share)
        return result


#: A purge that never pauses (``db purge --full-speed``, tests).
FULL_SPEED = Pace(busy=lambda: False)


@dataclass(frozen=True)
class Cutoffs:
    """A job created before its account's cutoff (epoch s) may go."""

    default: float
    by_account: Mapping[str, float] = field(default_factory=dict)

    def of(self, account: str) -> float:
        return self.by_account.get(account, self.default)

    def latest(self) -> float:
        return max([self.default, *self.by_account.values()])


def account_cutoffs(cfg: Settings, now: float) -> Cutoffs:
    """Each configured account's ``retention_days`` before ``now``."""
    by_account = {n: now - a.retention_days * DAY_S for n, a in cfg.accounts.items()}
    return Cutoffs(now - DEFAULT_RETENTION_DAYS * DAY_S, by_account)


@dataclass
class PurgeReport:
    jobs: list[str] = field(default_factory=list)
    messages: int = 0
    events: int = 0
    #: The purge stopped at its budget; the next run takes the rest.
    stopped: bool = False


def _may_go(conn: sa.Connection, job: AnyRow, cutoffs: Cutoffs) -> bool:
    if job.created_at >= cutoffs.of(job.account):
        return False
    if job.callback_url is not None and job.done_at is None:
        return False  # its job.done is still to be written and delivered
    # total 0: an old job whose enqueue died part-way is abandoned, and goes too.
    finished = messages_db.job_is_finished(conn, job.id, 0)
    return finished and events_db.pending_for_job(conn, job.id) == 0


def _candidates(engine: Engine, cutoffs: Cutoffs) -> Iterator[tuple[str, int]]:
    """``(job id, total)`` of the jobs that may go, a page of jobs read at a time: a purge
    stopped by its budget has not read the rest of a long history."""
    after = ""
    while True:
        with engine.connect() as conn:
            page = jobs_db.created_before(conn, cutoffs.latest(), after, JOBS_PAGE)
            found = [(str(j.id), int(j.total)) for j in page if _may_go(conn, j, cutoffs)]
        yield from found
        if len(page) < JOBS_PAGE:
            return
        after = str(page[-1].id)


def purgeable(engine: Engine, cutoff: float | Cutoffs) -> list[tuple[str, int]]:
    """``(job id, total)`` of finished jobs created before their cutoff, nothing pending."""
    return list(_candidates(engine, cutoff if isinstance(cutoff, Cutoffs) else Cutoffs(cutoff)))


def _remove(
    engine: Engine, job_id: str, report: PurgeReport, stop: Callable[[], bool], pace: Pace
) -> bool:
    """Remove one job's rows batch by batch; False if ``stop`` said so first (the job row
    stays for the next run) or a message of it is being worked on again."""
    while n := pace.run(lambda: messages_db.delete_job_messages(engine, job_id, BATCH)):
        report.messages += n
        if stop():
            return False
    while n := pace.run(lambda: events_db.delete_job_events(engine, job_id, BATCH)):
        report.events += n
        if stop():
            return False
    attempts_db.delete_for_job(engine, job_id)
    with engine.begin() as conn:
        if messages_db.count_job_messages(conn, job_id):
            return False  # re-enqueued parts or a receipt's retry: kept, looked at again later
        jobs_db.delete_job(conn, job_id)
    return True


def purge(
    engine: Engine,
    cutoff: float | Cutoffs,
    *,
    dry_run: bool = False,
    stop: Callable[[], bool] = lambda: False,
    pace: Pace = FULL_SPEED,
) -> PurgeReport:
    """Remove finished jobs created before ``cutoff`` (one time for every account, or
    :func:`account_cutoffs`); only list them with ``dry_run``. ``stop`` is asked after each
    batch: the beat task's time budget; ``pace`` says how to give way to dispatch (the CLI
    and the beat task pass :meth:`Pace.of` their engine)."""
    report = PurgeReport()
    cutoffs = cutoff if isinstance(cutoff, Cutoffs) else Cutoffs(cutoff)
    for job_id, total in _candidates(engine, cutoffs):
        if dry_run:
            report.jobs.append(job_id)
            report.messages += total
            continue
        if stop():
            report.stopped = True
            break
        if _remove(engine, job_id, report, stop, pace):
            report.jobs.append(job_id)
        elif stop():
            report.stopped = True
            break
    return report


__all__ = [
    "BATCH",
    "BUSY_SHARE",
    "DEFAULT_RETENTION_DAYS",
    "FULL_SPEED",
    "Cutoffs",
    "Pace",
    "PurgeReport",
    "account_cutoffs",
    "purge",
    "purgeable",
]
