"""Many small jobs, few transactions: a producer that group-commits.

:func:`producer.enqueue` makes each job durable before it returns: one transaction per call,
about a millisecond of database round trips and commit. An app that sends OTPs from a hot
loop or a busy web process pays that per message. :class:`Producer` validates each job in the
caller's thread (bad input still fails at the call, naming every problem), gives it its id at
once, and stores everything submitted within ``linger_ms`` in one transaction from a
background thread — the idea of Kafka's ``linger.ms`` and PostgreSQL's group commit.

The promise differs in one way, on purpose: a job is durable when its :meth:`Pending.result`
returns or after :meth:`Producer.flush` (and ``close``/``with``), not when ``submit`` returns.
A process that dies in between loses what it had not flushed, and never got a confirmation
for it. Jobs with an idempotency key and jobs larger than one part take the synchronous path
(their storing rules need the database's answer before anything else is written).
"""

from __future__ import annotations

import atexit
import json
import logging
import threading
import time
import weakref
from collections.abc import Iterable, Mapping, Sized
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from teledispatch.config import Settings, settings
from teledispatch.db import jobs as jobs_db
from teledispatch.db.engine import get_engine
from teledispatch.db.migrate import ensure_schema
from teledispatch.errors import Error
from teledispatch.producer import screen
from teledispatch.producer.jobs import SendJob
from teledispatch.producer.lane import Lane
from teledispatch.producer.submit import (
    PART_SIZE,
    Enqueued,
    check_channel,
    due_now,
    enqueue_job,
    enqueue_stream,
    prepare,
    records_for,
    wake_if_due,
)

log = logging.getLogger("teledispatch.producer")

#: How often a failed flush is tried again before its jobs' results raise.
FLUSH_ATTEMPTS = 3


class ProducerClosed(Error, RuntimeError):
    """``submit`` after ``close``."""


class StoreTimeout(Error, TimeoutError):
    """:meth:`Pending.result` waited its ``timeout`` and the job is not stored yet (it may
    still be: the flush goes on)."""


@dataclass(eq=False)
class Pending:
    """A submitted job: its id now, its outcome (stored, or why not) once flushed."""

    job_id: str
    total: int
    _done: threading.Event = field(default_factory=threading.Event, repr=False)
    _error: BaseException | None = field(default=None, repr=False)
    _created: bool = field(default=True, repr=False)

    def done(self) -> bool:
        return self._done.is_set()

    def result(self, timeout: float | None = None) -> Enqueued:
        """Wait until the job is durable; raises what storing it raised."""
        if not self._done.wait(timeout):
            raise StoreTimeout(f"job {self.job_id} not stored within {timeout}s")
        if self._error is not None:
            raise self._error
        return Enqueued(self.job_id, self.total, created=self._created)

    @classmethod
    def settled(cls, done: Enqueued) -> Pending:
        pending = cls(done.job_id, done.total, _created=done.created)
        pending._settle()
        return pending

    def _settle(self, error: BaseException | None = None) -> None:
        self._error = error
        self._done.set()


@dataclass(eq=False)
class _Item:
    pending: Pending
    job_row: dict[str, Any]
    records: list[dict[str, Any]]


class Producer:
    """Submit jobs from any number of threads; they are stored in shared transactions.

    Use as a context manager (or call :meth:`close`) so that nothing submitted is left
    unflushed. One per process: create it after forking (a thread does not survive ``fork``).
    """

    def __init__(
        self,
        cfg: Settings | None = None,
        *,
        linger_ms: float = 5.0,
        max_jobs: int = 2000,
    ) -> None:
        self.cfg = cfg or settings()
        self.linger_s = linger_ms / 1000
        self.max_jobs = max_jobs
        self._lock = threading.Condition()
        self._queue: list[_Item] = []
        self._writing: list[_Item] = []
        self._urgent = False
        self._closed = False
        self._thread: threading.Thread | None = None
        # An app that forgets close() still gets what it submitted stored at a clean exit.
        atexit.register(_close_at_exit, weakref.ref(self))

    def __enter__(self) -> Producer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def submit(self, job: SendJob) -> Pending:
        """Validate ``job`` now (raises :class:`~producer.validation.ValidationFailed`) and
        queue it for the next shared transaction. A routed job is stored at once."""
        if job.route is not None:
            if self._closed:
                raise ProducerClosed("this producer was closed")
            return Pending.settled(enqueue_job(job, cfg=self.cfg))
        assert job.account is not None
        check_channel(job, self.cfg)
        return self.submit_recipients(
            job.account,
            job.recipients,
            defaults=job.defaults,
            idempotency_key=job.idempotency_key,
            not_before=job.not_before,
            allow_duplicates=job.allow_duplicates,
            lane=Lane(job.priority, job.expires_at, job.ttl_s, job.weight),
            callback_url=job.callback_url,
            quiet_hours=job.quiet_hours,
        )

    def submit_recipients(
        self,
        account: str,
        recipients: Iterable[Mapping[str, Any]],
        *,
        defaults: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
        not_before: datetime | None = None,
        allow_duplicates: bool = False,
        lane: Lane | None = None,
        callback_url: str | None = None,
        quiet_hours: str | None = None,
    ) -> Pending:
        """Like :meth:`submit`, with :func:`~producer.enqueue_stream`'s arguments (``lane``:
        its ``priority``, ``expires_at`` and ``ttl_s``)."""
        lane = lane or Lane()
        if self._closed:
            raise ProducerClosed("this producer was closed")
        big = isinstance(recipients, Sized) and len(recipients) > PART_SIZE
        if idempotency_key is not None or big:
            done = enqueue_stream(
                account,
                recipients,
                defaults=defaults,
                idempotency_key=idempotency_key,
                not_before=not_before,
                allow_duplicates=allow_duplicates,
                priority=lane.priority,
                expires_at=lane.expires_at,
                ttl_s=lane.ttl_s,
                callback_url=callback_url,
                weight=lane.weight,
                quiet_hours=quiet_hours,
                cfg=self.cfg,
            )
            return Pending.settled(done)
        row, spool = prepare(
            self.cfg,
            account,
            recipients,
            defaults,
            None,
            not_before,
            allow_duplicates,
            lane,
            callback_url,
            quiet_hours,
        )
        try:
            if row["parts"] > 1:
                # An iterator that turned out to be big: store it part by part as usual
                # (validated twice, which only this unusual call pays).
                rows = (json.loads(row[3]) for part in spool.parts(PART_SIZE) for row in part)
                done = enqueue_stream(
                    account,
                    rows,
                    not_before=not_before,
                    allow_duplicates=True,
                    priority=lane.priority,
                    expires_at=lane.expires_at,
                    ttl_s=lane.ttl_s,
                    callback_url=callback_url,
                    weight=lane.weight,
                    quiet_hours=quiet_hours,
                    cfg=self.cfg,
                )
                return Pending.settled(done)
            part = next(spool.parts(PART_SIZE))
        finally:
            spool.close()
        stored = (row["priority"], row["expires_at"])
        records = records_for(
            row["id"],
            account,
            row["channel"],
            part,
            row["not_before"],
            lane=stored,
            quiet=row["quiet_hours"],
        )
        pending = Pending(row["id"], row["total"])
        with self._lock:
            if self._closed:  # closed while this call validated: nobody would store it
                raise ProducerClosed("this producer was closed")
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="teledispatch-producer", daemon=True
                )
                self._thread.start()
            self._queue.append(_Item(pending, row, records))
            if len(self._queue) == 1 or len(self._queue) >= self.max_jobs:
                self._lock.notify_all()
        return pending

    def flush(self, timeout: float | None = None) -> None:
        """Block until everything submitted so far is stored (or failed); raises the first
        failure among them."""
        with self._lock:
            waiting = [item.pending for item in self._writing + self._queue]
            self._urgent = True
            self._lock.notify_all()
        deadline = None if timeout is None else time.monotonic() + timeout
        first: BaseException | None = None
        for pending in waiting:  # every one, even after a failure: "stored (or failed)"
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                pending.result(left)
            except TimeoutError:
                raise
            except Exception as exc:
                first = first or exc
        if first is not None:
            raise first

    def close(self, timeout: float | None = None) -> None:
        """Flush (raising the first failure), then stop the background thread. Idempotent."""
        with self._lock:
            already = self._closed
            self._closed = True
        if already:
            return
        try:
            self.flush(timeout)
        finally:
            with self._lock:
                self._lock.notify_all()
            if self._thread is not None:
                self._thread.join(timeout)

    # -- the background side ---------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._lock:
                while not self._queue and not self._closed:
                    self._lock.wait()
                if not self._queue:
                    return
                # Linger: let more jobs join this transaction, unless it is full or wanted now.
                deadline = time.monotonic() + self.linger_s
                while len(self._queue) < self.max_jobs and not (self._urgent or self._closed):
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._lock.wait(left)
                self._writing = self._queue[: self.max_jobs]
                self._queue = self._queue[self.max_jobs :]
                self._urgent = bool(self._queue) and self._urgent
                batch = self._writing
            self._store(batch)
            with self._lock:
                self._writing = []

    def _store(self, batch: list[_Item]) -> None:
        error: BaseException | None = None
        for attempt in range(1, FLUSH_ATTEMPTS + 1):
            try:
                if attempt > 1 and self._stored(batch):
                    # The commit went through but its answer was lost: stored, not failed.
                    error = None
                    break
                self._write(batch)
                error = None
                break
            except Exception as exc:  # the database is the only thing that can fail here
                error = exc
                log.warning(
                    "storing %d jobs failed (attempt %d of %d): %s",
                    len(batch),
                    attempt,
                    FLUSH_ATTEMPTS,
                    type(exc).__name__,
                )
                if attempt < FLUSH_ATTEMPTS:
                    time.sleep(0.05 * attempt)
        for item in batch:
            item.pending._settle(error)
        if error is None:
            try:
                self._wake(batch)
            except Exception:  # stored is stored: the sweep wakes what a failed wake-up missed
                log.exception("waking dispatchers after storing %d jobs failed", len(batch))

    def _write(self, batch: list[_Item]) -> None:
        url = self.cfg.database_url
        ensure_schema(url)
        engine = get_engine(url)
        with engine.begin() as conn:
            jobs_db.insert_jobs(conn, [item.job_row for item in batch])
            records = [r for item in batch for r in item.records]
            screen.store(conn, records, fresh=True)

    def _stored(self, batch: list[_Item]) -> bool:
        """Whether a transaction that seemed to fail had committed (it is all or nothing)."""
        ids = [item.job_row["id"] for item in batch]
        engine = get_engine(self.cfg.database_url)
        with engine.connect() as conn:
            found = jobs_db.count_existing(conn, ids)
        return found == len(ids)

    def _wake(self, batch: list[_Item]) -> None:
        """One wake-up per account that has a job due now (scheduled ones: the sweep).

        The commit's rows of an account are counted together, so a burst that fills a batch
        is dispatched at once instead of after the linger."""
        due: dict[str, int] = {}
        for item in batch:
            if due_now(item.job_row["not_before"]):
                account = item.job_row["account"]
                due[account] = due.get(account, 0) + item.job_row["total"]
        for account, rows in due.items():
            wake_if_due(self.cfg, self.cfg.account(account), None, rows)


def _close_at_exit(ref: weakref.ReferenceType[Producer]) -> None:
    producer = ref()
    if producer is not None:
        try:
            producer.close(timeout=10)
        except Exception:
            log.exception("jobs submitted to a Producer could not be stored at exit")
