"""Validate a whole job, then hand it to the workers in parts.

Order matters for the promise "bad input enqueues nothing": every recipient is validated (and
spooled to a temporary file, so a million-recipient job costs the same memory as a small one)
before the job row is written or anything is published. Parts carry at most
:data:`PART_SIZE` recipients each, so no broker message grows with the job.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO, Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from producer.broker import ACCEPT_QUEUE, ACCEPT_TASK, publish
from producer.channels import rules_for
from producer.config import ConfigError, Settings, settings
from producer.jobs import SendJob
from producer.store import create_schema, get_engine, jobs_table, messages_table
from producer.validation import Problem, ValidationFailed

#: Recipients per broker message (one ``jobs.accept`` task, one database transaction).
PART_SIZE = 5000
#: Problems kept in memory for the error; the count beyond that is still reported.
PROBLEM_KEEP = 1000


class IdempotencyConflict(ValueError):
    """The idempotency key was used before for a job with different content."""


@dataclass(frozen=True, slots=True)
class Enqueued:
    job_id: str
    total: int
    #: False when an earlier job with the same idempotency key was returned instead.
    created: bool


def new_job_id() -> str:
    return uuid.uuid4().hex


def _as_epoch(value: datetime | None) -> float | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.timestamp()


class _Spool:
    """Validated rows on disk (in memory while small), plus a running hash of the job."""

    def __init__(self) -> None:
        self.file: IO[str] = tempfile.SpooledTemporaryFile(  # noqa: SIM115 - closed by owner
            max_size=8 << 20, mode="w+", encoding="utf-8"
        )
        self.hash = hashlib.sha256()
        self.count = 0

    def add(self, row: list[Any]) -> None:
        line = json.dumps(row, ensure_ascii=False, separators=(",", ":"))
        self.hash.update(line.encode())
        self.file.write(line)
        self.file.write("\n")
        self.count += 1

    def parts(self, size: int) -> Iterator[list[list[Any]]]:
        self.file.seek(0)
        part: list[list[Any]] = []
        for line in self.file:
            part.append(json.loads(line))
            if len(part) == size:
                yield part
                part = []
        if part:
            yield part

    def close(self) -> None:
        self.file.close()


def _validate(
    cfg: Settings,
    account_name: str,
    recipients: Iterable[Mapping[str, Any]],
    defaults: Mapping[str, Any],
    allow_duplicates: bool,
    now: float,
) -> tuple[str, _Spool]:
    """Every recipient checked; returns the channel and the spooled rows, or raises."""
    try:
        account = cfg.account(account_name)
    except ConfigError as exc:
        raise ValidationFailed([Problem(None, "account", account_name, str(exc))]) from None
    rules = rules_for(account.channel)
    problems: list[Problem] = []
    total_problems = 0
    for name in defaults:
        if name not in rules.fields:
            total_problems += 1
            problems.append(Problem(None, f"defaults.{name}", defaults[name], "unknown field"))
    seen: set[str] = set()
    spool = _Spool()
    try:
        for index, recipient in enumerate(recipients):
            if not isinstance(recipient, Mapping):
                total_problems += 1
                if len(problems) < PROBLEM_KEEP:
                    problems.append(Problem(index, "recipient", recipient, "must be an object"))
                continue
            fields = {**defaults, **recipient} if defaults else dict(recipient)
            found: list[Problem] = []
            clean = rules.validate(index, fields, found, now)
            if clean is not None and not allow_duplicates:
                key = rules.dedupe_key(clean)
                if key in seen:
                    found.append(
                        Problem(
                            index,
                            "phone" if "phone" in fields else "phone_a",
                            fields.get("phone", fields.get("phone_a")),
                            "duplicate recipient in this job (set allow_duplicates to send again)",
                        )
                    )
                    clean = None
                else:
                    seen.add(key)
            if found:
                total_problems += len(found)
                problems.extend(found[: max(0, PROBLEM_KEEP - len(problems))])
                continue
            if total_problems == 0 and clean is not None:
                spool.add([index, clean])
            elif clean is not None:
                spool.count += 1
        if total_problems == 0 and spool.count == 0:
            total_problems = 1
            problems.append(Problem(None, "recipients", [], "must list at least one recipient"))
        if total_problems:
            raise ValidationFailed(problems, total=total_problems)
    except BaseException:
        spool.close()
        raise
    return account.channel, spool


def enqueue(job: SendJob, *, cfg: Settings | None = None) -> str:
    """Validate and enqueue ``job``; returns its id. Raises :class:`ValidationFailed`."""
    return enqueue_stream(
        job.account,
        job.recipients,
        defaults=job.defaults,
        idempotency_key=job.idempotency_key,
        not_before=job.not_before,
        allow_duplicates=job.allow_duplicates,
        cfg=cfg,
    ).job_id


def enqueue_stream(
    account: str,
    recipients: Iterable[Mapping[str, Any]],
    *,
    defaults: Mapping[str, Any] | None = None,
    idempotency_key: str | None = None,
    not_before: datetime | None = None,
    allow_duplicates: bool = False,
    cfg: Settings | None = None,
) -> Enqueued:
    """Like :func:`enqueue`, for recipients that arrive as an iterator (a CSV, a query).

    Memory stays flat however many recipients there are; the iterator is read once.
    """
    cfg = cfg or settings()
    now = time.time()
    channel, spool = _validate(cfg, account, recipients, defaults or {}, allow_duplicates, now)
    try:
        header = {
            "account": account,
            "not_before": _as_epoch(not_before),
            "allow_duplicates": allow_duplicates,
        }
        spool.hash.update(json.dumps(header, sort_keys=True).encode())
        content_hash = spool.hash.hexdigest()
        engine = get_engine(cfg.database_url)
        create_schema(engine)
        job_id = new_job_id()
        parts = -(-spool.count // PART_SIZE)
        row = {
            "id": job_id,
            "account": account,
            "channel": channel,
            "total": spool.count,
            "parts": parts,
            "defaults": json.dumps(dict(defaults or {}), ensure_ascii=False, default=str),
            "idempotency_key": idempotency_key,
            "content_hash": content_hash,
            "not_before": header["not_before"],
            "created_at": now,
        }
        try:
            with engine.begin() as conn:
                conn.execute(jobs_table.insert().values(**row))
        except IntegrityError:
            if idempotency_key is None:
                raise
            return _existing(cfg, engine, idempotency_key, content_hash, spool)
        _publish_parts(cfg, job_id, spool)
        return Enqueued(job_id, spool.count, created=True)
    finally:
        spool.close()


def _existing(
    cfg: Settings, engine: sa.Engine, key: str, content_hash: str, spool: _Spool
) -> Enqueued:
    with engine.connect() as conn:
        job = conn.execute(
            sa.select(jobs_table.c.id, jobs_table.c.content_hash, jobs_table.c.total).where(
                jobs_table.c.idempotency_key == key
            )
        ).one()
        if job.content_hash != content_hash:
            raise IdempotencyConflict(
                f"idempotency key {key!r} was already used for job {job.id} with different "
                "content; use a new key for a different job"
            )
        accepted = conn.execute(
            sa.select(sa.func.count()).where(messages_table.c.job_id == job.id)
        ).scalar_one()
    if accepted < job.total:
        # The first enqueue may have died between writing the job and publishing every part.
        # Accepting is idempotent per message id, so publishing all parts again is safe.
        _publish_parts(cfg, job.id, spool)
    return Enqueued(job.id, job.total, created=False)


def _publish_parts(cfg: Settings, job_id: str, spool: _Spool) -> None:
    for part_no, part in enumerate(spool.parts(PART_SIZE)):
        rows = json.dumps(part, ensure_ascii=False, separators=(",", ":"))
        publish(
            cfg.redis_url,
            ACCEPT_TASK,
            [job_id, part_no, rows],
            queue=ACCEPT_QUEUE,
            # Flower and task events show this instead of thousands of phone numbers.
            argsrepr=f"(job={job_id}, part={part_no}, recipients={len(part)})",
        )
