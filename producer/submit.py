"""Validate a whole job, then store it in parts and wake the dispatchers.

Order matters for the promise "bad input enqueues nothing": every recipient is validated (and
spooled: in memory up to :data:`SPOOL_MEMORY_ROWS`, then to a temporary file, so a
million-recipient job costs no more memory than a mid-sized one) before the job row is
written. Rows then go to the database in parts of :data:`PART_SIZE`, one transaction each, so
sending starts while a big job is still being stored. The broker
only ever carries a wake-up ("dispatch account X"): no job data lives in Redis, so losing
Redis loses nothing (the sweep re-issues wake-ups from the database).
"""

from __future__ import annotations

import functools
import json
import logging
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from teledispatch import quiet_hours as quiet_hours_mod
from teledispatch import wakeups as broker
from teledispatch.channels.base import ChannelRules
from teledispatch.config import AccountConfig, Settings, settings
from teledispatch.db import jobs as jobs_db
from teledispatch.db import messages as messages_db
from teledispatch.db.engine import get_engine
from teledispatch.db.migrate import ensure_schema
from teledispatch.errors import Error
from teledispatch.priorities import priority_word
from teledispatch.producer import screen

# Re-exported: dry_run, group_commit and tests import these from here.
from teledispatch.producer._spool import SPOOL_MEMORY_ROWS as SPOOL_MEMORY_ROWS
from teledispatch.producer._spool import SpooledRow as SpooledRow
from teledispatch.producer._spool import _Spool as _Spool
from teledispatch.producer._spool import records_for as records_for
from teledispatch.producer._spool import spooled_rows as spooled_rows
from teledispatch.producer._validate import PROBLEM_KEEP as PROBLEM_KEEP
from teledispatch.producer._validate import _as_epoch as _as_epoch
from teledispatch.producer._validate import _check_quiet_hours as _check_quiet_hours
from teledispatch.producer._validate import _validate as _validate
from teledispatch.producer.callback import check_options
from teledispatch.producer.jobs import SendJob
from teledispatch.producer.lane import Lane
from teledispatch.statuses import CANCELLED, QUEUED
from teledispatch.validation import Problem, ValidationFailed

if TYPE_CHECKING:
    import redis

#: A job due within this is woken now (after the linger); later ones are left to the sweep.
WAKE_AHEAD_S = 1.0
#: Recipients per database transaction while storing a job.
PART_SIZE = 5000

log = logging.getLogger("teledispatch.submit")


class IdempotencyConflict(Error, ValueError):
    """The idempotency key was used before for a job with different content."""


@dataclass(frozen=True, slots=True)
class Enqueued:
    job_id: str
    total: int
    #: False when an earlier job with the same idempotency key was returned instead.
    created: bool


def new_job_id() -> str:
    return uuid.uuid4().hex


def validate_stream(
    account: str,
    recipients: Iterable[Mapping[str, Any]],
    *,
    defaults: Mapping[str, Any] | None = None,
    allow_duplicates: bool = False,
    cfg: Settings | None = None,
) -> int:
    """Check every recipient as :func:`enqueue_stream` would, and store nothing (a dry run).

    Returns how many recipients would be enqueued; raises :class:`ValidationFailed` otherwise.
    """
    cfg = cfg or settings()
    _, spool = _validate(cfg, account, recipients, defaults or {}, allow_duplicates, time.time())
    spool.close()
    return spool.count


def enqueue(job: SendJob, *, cfg: Settings | None = None) -> str:
    """Validate and enqueue ``job``; returns its id. Raises :class:`ValidationFailed`."""
    return enqueue_job(job, cfg=cfg).job_id


def check_channel(job: SendJob, cfg: Settings) -> None:
    """Refuse a job that states a channel other than its account's (an unknown account is
    left to the validation that names it; a routed job's members are checked by its route)."""
    if job.account is None:
        return
    account = cfg.accounts.get(job.account)
    rule = None if account is None else job.channel_rule(account.channel)
    if rule is not None:
        raise ValidationFailed([Problem(None, "channel", job.channel, rule)])


def enqueue_job(job: SendJob, *, cfg: Settings | None = None) -> Enqueued:
    """:func:`enqueue` with its :class:`Enqueued` (a routed job goes through its route)."""
    if job.route is None:
        assert job.account is not None  # SendJob holds exactly one of the two
        check_channel(job, cfg or settings())
        return enqueue_stream(
            job.account,
            job.recipients,
            defaults=job.defaults,
            idempotency_key=job.idempotency_key,
            not_before=job.not_before,
            allow_duplicates=job.allow_duplicates,
            priority=job.priority,
            expires_at=job.expires_at,
            ttl_s=job.ttl_s,
            callback_url=job.callback_url,
            weight=job.weight,
            quiet_hours=job.quiet_hours,
            cfg=cfg,
        )
    # Imported here: the routed module builds on this one.
    from teledispatch.producer.routed import enqueue_route

    return enqueue_route(
        job.route,
        job.recipients,
        defaults=job.defaults,
        idempotency_key=job.idempotency_key,
        not_before=job.not_before,
        allow_duplicates=job.allow_duplicates,
        lane=Lane(job.priority, job.expires_at, job.ttl_s, job.weight),
        callback_url=job.callback_url,
        quiet_hours=job.quiet_hours,
        cfg=cfg,
    )


def prepare(
    cfg: Settings,
    account: str,
    recipients: Iterable[Mapping[str, Any]],
    defaults: Mapping[str, Any] | None,
    idempotency_key: str | None,
    not_before: datetime | None,
    allow_duplicates: bool,
    lane: Lane | None = None,
    callback_url: str | None = None,
    quiet_hours: str | None = None,
) -> tuple[dict[str, Any], _Spool]:
    """Validate a job and build its ``jobs`` row (a new id); the caller owns the spool."""
    now = time.time()
    lane = lane or Lane()
    check_options(lane, callback_url, cfg.webhooks)
    quiet = _check_quiet_hours(quiet_hours)
    channel, spool = _validate(cfg, account, recipients, defaults or {}, allow_duplicates, now)
    start_at = _as_epoch(not_before)
    priority, expires_at = lane.resolve(cfg.account(account), max(now, start_at or 0.0))
    header: dict[str, Any] = {
        "account": account,
        "not_before": start_at,
        "allow_duplicates": allow_duplicates,
    }
    if not lane.is_default():  # so the content hash of a job without them is unchanged
        header["lane"] = [lane.priority, _as_epoch(lane.expires_at), lane.ttl_s]
    if callback_url:  # likewise: a re-send with another callback is another job (409)
        header["callback_url"] = callback_url
    if lane.weight is not None:  # likewise
        header["weight"] = lane.weight
    if quiet:
        header["quiet_hours"] = quiet
    spool.hash.update(json.dumps(header, sort_keys=True).encode())
    row = {
        "id": new_job_id(),
        "account": account,
        "channel": channel,
        "total": spool.count,
        "parts": -(-spool.count // PART_SIZE),
        "defaults": json.dumps(dict(defaults or {}), ensure_ascii=False, default=str),
        "idempotency_key": idempotency_key,
        "content_hash": spool.hash.hexdigest(),
        "not_before": start_at,
        "created_at": now,
        "priority": priority,
        "expires_at": expires_at,
        "weight": lane.stored_weight(),
        # The job's own URL, else the account's default; None writes no events at all.
        "callback_url": callback_url or cfg.account(account).callback_url or None,
        "quiet_hours": quiet_hours_mod.resolve(
            quiet, cfg.account(account).quiet_hours, priority_word(priority)
        ),
    }
    return row, spool


def enqueue_stream(
    account: str,
    recipients: Iterable[Mapping[str, Any]],
    *,
    defaults: Mapping[str, Any] | None = None,
    idempotency_key: str | None = None,
    not_before: datetime | None = None,
    allow_duplicates: bool = False,
    priority: str | None = None,
    expires_at: datetime | None = None,
    ttl_s: float | None = None,
    callback_url: str | None = None,
    weight: float | None = None,
    quiet_hours: str | None = None,
    cfg: Settings | None = None,
) -> Enqueued:
    """Like :func:`enqueue`, for recipients that arrive as an iterator (a CSV, a query).

    Memory stays flat however many recipients there are; the iterator is read once.
    ``priority``, ``expires_at``, ``ttl_s``, ``weight`` and ``quiet_hours`` as in :class:`SendJob`.
    """
    cfg = cfg or settings()
    lane = Lane(priority, expires_at, ttl_s, weight)
    row, spool = prepare(
        cfg,
        account,
        recipients,
        defaults,
        idempotency_key,
        not_before,
        allow_duplicates,
        lane,
        callback_url,
        quiet_hours,
    )
    try:
        job_id, channel, start_at = row["id"], row["channel"], row["not_before"]
        content_hash = row["content_hash"]
        engine = get_engine(cfg.database_url)
        ensure_schema(cfg.database_url)
        parts = row["parts"]
        single = parts == 1
        try:
            with engine.begin() as conn:
                jobs_db.insert_jobs(conn, [row])
                if single:
                    # A job of one part (every OTP) is stored in the same transaction as its
                    # header: one commit instead of three, which is most of an enqueue's cost.
                    part = next(spool.parts(PART_SIZE))
                    records = records_for(
                        job_id,
                        account,
                        channel,
                        part,
                        start_at,
                        lane=_lane_of(row),
                        quiet=row["quiet_hours"],
                    )
                    screen.store(conn, records, fresh=True)
        except IntegrityError:
            if idempotency_key is None:
                raise
            return _existing(cfg, engine, idempotency_key, content_hash, spool, start_at)
        if single:
            wake_if_due(cfg, cfg.account(account), start_at, spool.count)
        else:
            _store_parts(cfg, engine, job_id, spool, start_at, fresh=True)
        return Enqueued(job_id, spool.count, created=True)
    finally:
        spool.close()


def _existing(
    cfg: Settings,
    engine: sa.Engine,
    key: str,
    content_hash: str,
    spool: _Spool,
    not_before: float | None,
) -> Enqueued:
    with engine.connect() as conn:
        job = jobs_db.by_idempotency_key(conn, key)
        if job.content_hash != content_hash:
            raise IdempotencyConflict(
                f"idempotency key {key!r} was already used for job {job.id} with different "
                "content; use a new key for a different job"
            )
        accepted = messages_db.count_job_messages(conn, job.id)
    if accepted < job.total:
        # The first enqueue may have died between writing the job and storing every part.
        # Storing is idempotent per message id, so storing all parts again is safe.
        _store_parts(cfg, engine, job.id, spool, not_before)
    return Enqueued(job.id, job.total, created=False)


def _store_parts(
    cfg: Settings,
    engine: sa.Engine,
    job_id: str,
    spool: _Spool,
    not_before: float | None,
    *,
    fresh: bool = False,
) -> None:
    job = _job_row(engine, job_id)
    account = cfg.account(job.account)
    for part in spool.parts(PART_SIZE):
        _store_rows(engine, job_id, part, not_before, fresh=fresh)
        wake_if_due(cfg, account, not_before, len(part))


def due_now(not_before: float | None) -> bool:
    """Whether a job starting at ``not_before`` is woken when stored (else by the sweep)."""
    return (not_before or 0.0) <= time.time() + WAKE_AHEAD_S


def wake_if_due(
    cfg: Settings, account: AccountConfig, not_before: float | None, rows: int = 0
) -> bool:
    """Wake dispatch for a job due now; True if asked. A job scheduled for later is woken by
    the sweep once it is due: no long countdown ever sits in the broker (it would outlive
    the visibility timeout and be redelivered).

    ``rows`` just stored that fill a batch on their own are woken at once: the linger exists
    so that single recipients arriving close together share a request, and a full batch has
    nothing to wait for (it was 250 ms on the critical path of every bulk job)."""
    if not due_now(not_before):
        return False
    delay = 0.0 if rows >= account.batch_size else account.linger_ms / 1000
    # Due within WAKE_AHEAD_S: woken for its start, not before (a dispatch then would find
    # nothing due, and the rows would wait for the sweep).
    wake(cfg, account, max(delay, (not_before or 0.0) - time.time()))
    return True


def _job_row(engine: sa.Engine, job_id: str) -> Any:
    with engine.connect() as conn:
        return jobs_db.storing_header(conn, job_id)


def store_part(
    engine: sa.Engine,
    job_id: str,
    part: list[list[Any]],
    rules: ChannelRules,
    not_before: float | None,
    *,
    fresh: bool = False,
) -> int:
    """One transaction: the part's ``[index, fields]`` rows, ``queued`` (``cancelled`` if the
    job was cancelled while it was being stored). Rows already present are skipped; ``fresh``
    promises there are none (the job was created by this call), which lets PostgreSQL take
    them by COPY."""
    return _store_rows(engine, job_id, spooled_rows(part, rules), not_before, fresh=fresh)


def _store_rows(
    engine: sa.Engine,
    job_id: str,
    rows: list[SpooledRow],
    not_before: float | None,
    *,
    fresh: bool = False,
) -> int:
    """:func:`store_part` for rows already in the spool's form."""
    with engine.begin() as conn:
        job = jobs_db.storing_header(conn, job_id)
        status = CANCELLED if job.cancelled_at is not None else QUEUED
        lane = (job.priority, job.expires_at)
        records = records_for(
            job_id, job.account, job.channel, rows, not_before, status, lane, job.quiet_hours
        )
        screen.store(conn, records, fresh=fresh)
    return len(records)


def _lane_of(row: Mapping[str, Any]) -> tuple[int, float | None]:
    """A job row's stored ``(priority, expires_at)``."""
    return (row["priority"], row["expires_at"])


def wake(cfg: Settings, account: AccountConfig, delay_s: float) -> None:
    """Ask for a dispatch of ``account``. Best effort: if the broker is unreachable the rows
    are stored all the same and the periodic sweep starts them."""
    try:
        # The linger (rows that do not fill a batch) is waited only behind a request in
        # flight: on an idle account a single leaves at once.
        lingering = delay_s > 0 and delay_s == account.linger_ms / 1000
        client = _redis(cfg.redis_url)
        broker.kick(
            client, broker.sender(cfg.celery_broker_url), account, delay_s, linger_if_busy=lingering
        )
    except Exception as exc:  # the broker is optional at this point, the database is not
        log.warning("could not wake dispatchers for %s (%s); the sweep will", account.name, exc)


@functools.lru_cache(maxsize=4)
def _redis(url: str) -> redis.Redis[bytes]:
    # Imported here: a dry run, and a job due later (the sweep starts it), need no client.
    import redis

    return redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5)
