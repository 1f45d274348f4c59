"""Enqueueing a job that names a route (``SendJob(route=…)``): each recipient validated
against every account of the route it may use, then stored on the first of them whose
circuit is closed.

A routed job is validated in memory (its rows differ per destination, so the account-wide
spool does not apply); its message rows are built and stored per part of :data:`PART_SIZE`,
one transaction each, the first with the job's row. Opt-outs, quiet hours, weight and
``{field}`` templates are the account path's own functions (``screen``, ``_hold_quiet``,
``quiet_hours.resolve``, ``_fill_template``), not copies.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.exc import IntegrityError

from teledispatch import circuits
from teledispatch import quiet_hours as quiet_hours_mod
from teledispatch.channels.registry import rules_for
from teledispatch.channels.sms_segments import measure
from teledispatch.config import ConfigError, Settings, settings
from teledispatch.db import jobs as jobs_db
from teledispatch.db.engine import get_engine
from teledispatch.db.migrate import ensure_schema
from teledispatch.priorities import priority_word
from teledispatch.producer import screen
from teledispatch.producer._spool import _hold_quiet
from teledispatch.producer._validate import _default_template_names, _fill_template
from teledispatch.producer.callback import check_options
from teledispatch.producer.lane import Lane
from teledispatch.producer.submit import (
    PART_SIZE,
    Enqueued,
    IdempotencyConflict,
    _as_epoch,
    _check_quiet_hours,
    new_job_id,
    wake_if_due,
)
from teledispatch.routes import ROUTE_FIELDS, Route, payload_for
from teledispatch.statuses import QUEUED
from teledispatch.validation import Problem, ValidationFailed, normalize_phone

_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode


@dataclass
class _Rows:
    """Validated rows as ``(index, phone, account, payload)`` and the problems found."""

    rows: list[tuple[int, str, str, dict[str, Any]]] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


def _route(cfg: Settings, name: str) -> Route:
    try:
        return cfg.route(name)
    except ConfigError as exc:
        raise ValidationFailed([Problem(None, "route", name, str(exc))]) from None


def _check_member(
    cfg: Settings, route: Route, account: str, index: int, phone: str, text: Any, now: float
) -> list[Problem]:
    """The row as ``account`` would send it, checked by its channel's rules."""
    acct = cfg.account(account)
    payload = payload_for(route, account, acct.channel, phone, text)
    found: list[Problem] = []
    rules = rules_for(acct.channel, any_number_type=acct.allow_any_number_type)
    rules.validate(index, payload, found, now)
    return [Problem(p.index, p.field, p.value, f"{p.rule} (via {account})") for p in found]


def _check_row(
    cfg: Settings,
    route: Route,
    index: int,
    fields: dict[str, Any],
    now: float,
    variables: frozenset[str] = frozenset(),
) -> tuple[list[Problem], str | None]:
    """The row's problems and its phone (E.164) when it has none. ``{field}`` placeholders
    of its content are filled from its fields first, as the account path fills them
    (``variables``: the job-wide template's, consumed with the row's own)."""
    filled = _fill_template(index, fields, "content", ROUTE_FIELDS, variables)
    found = filled + [
        Problem(
            index, name, fields[name], f"unknown field (a route job takes {sorted(ROUTE_FIELDS)})"
        )
        for name in fields
        if name not in ROUTE_FIELDS
    ]
    phone = normalize_phone(fields.get("phone"))
    if phone is None:
        found.append(Problem(index, "phone", fields.get("phone"), "not a valid phone number"))
        return found, None
    accounts = route.accounts_for(phone)
    if filled:
        return found, None  # the members would check a half-filled text
    if not accounts:
        found.append(Problem(index, "phone", phone, f"no account of route {route.name} serves it"))
    for account in accounts:  # every member it may move on to
        found += _check_member(cfg, route, account, index, phone, fields.get("content"), now)
    return found, None if found else phone


@dataclass
class Checked:
    """Every recipient checked: the valid ones as ``(index, phone, text)``, the problems, and
    the counts a dry run reports."""

    rows: list[tuple[int, str, str]] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    invalid: int = 0
    duplicates: int = 0


def validate_route_job(
    cfg: Settings,
    route: Route,
    recipients: Sequence[Mapping[str, Any]],
    defaults: Mapping[str, Any],
    allow_duplicates: bool,
) -> list[tuple[int, str, str]]:
    """``(index, phone, text)`` of every recipient, or :class:`ValidationFailed` listing all."""
    checked = check_route_job(cfg, route, recipients, defaults, allow_duplicates)
    if checked.problems:
        raise ValidationFailed(checked.problems[:1000], total=len(checked.problems))
    return checked.rows


def check_route_job(
    cfg: Settings,
    route: Route,
    recipients: Sequence[Mapping[str, Any]],
    defaults: Mapping[str, Any],
    allow_duplicates: bool,
) -> Checked:
    """:func:`validate_route_job` without raising for rows (the dry run reports them); a
    broken job-wide template still raises."""
    now = time.time()
    variables = _default_template_names(defaults, "content") - ROUTE_FIELDS
    problems = [
        Problem(None, f"defaults.{k}", v, "unknown field")
        for k, v in defaults.items()
        if k not in ROUTE_FIELDS | variables
    ]
    checked = Checked(problems=problems)
    rows = checked.rows
    seen: set[str] = set()
    for index, recipient in enumerate(recipients):
        if not isinstance(recipient, Mapping):
            problems.append(Problem(index, "recipient", recipient, "must be an object"))
            checked.invalid += 1
            continue
        fields = {**defaults, **recipient}
        found, phone = _check_row(cfg, route, index, fields, now, variables)
        if phone is not None and not allow_duplicates and phone in seen:
            rule = "duplicate recipient in this job (set allow_duplicates to send again)"
            found.append(Problem(index, "phone", phone, rule))
            checked.duplicates += 1
        problems += found
        checked.invalid += bool(found)
        if phone is not None and not found:
            seen.add(phone)
            rows.append((index, phone, str(fields["content"])))
    if not problems and not rows:
        problems.append(Problem(None, "recipients", [], "must list at least one recipient"))
    return checked


#: ``(redis_url, account)`` → the paused line or None (tests pass their own).
read_circuit: Callable[[str, str], str | None] = circuits.describe


class _Circuits:
    """Which accounts are paused, read once per account per job (best effort: Redis down
    reads as closed, and the worker moves what waits on a paused account)."""

    def __init__(self, redis_url: str) -> None:
        self.url = redis_url
        self.paused: dict[str, bool] = {}

    def first_closed(self, accounts: Sequence[str]) -> str:
        for account in accounts:
            if account not in self.paused:
                self.paused[account] = read_circuit(self.url, account) is not None
            if not self.paused[account]:
                return account
        return accounts[0]


def _records(
    cfg: Settings,
    route: Route,
    job_id: str,
    rows: Sequence[tuple[int, str, str]],
    start_at: float | None,
    lane: tuple[int, float | None],
    quiet: str | None = None,
    paused: _Circuits | None = None,
) -> list[dict[str, Any]]:
    """``messages`` rows, each on the first member whose circuit is closed; ``quiet``: the
    job's quiet hours, which store a row due in its recipient's quiet hours ``deferred``
    (the account path's rule, :func:`~teledispatch.producer._spool.records_for`)."""
    now = time.time()
    due = max(now, start_at or 0.0)
    paused = paused or _Circuits(cfg.redis_url)
    records = []
    for index, phone, text in rows:
        account = paused.first_closed(route.accounts_for(phone))
        channel = cfg.account(account).channel
        payload = payload_for(route, account, channel, phone, text)
        measured = measure(text) if "content" in payload else None
        records.append(
            {
                "id": f"{job_id}-{index}",
                "job_id": job_id,
                "seq": index,
                "account": account,
                "channel": channel,
                "phone": phone,
                "group_key": "",
                "payload": _encode(payload),
                "status": QUEUED,
                "due_at": due,
                "priority": lane[0],
                "expires_at": lane[1],
                "attempts": 0,
                "created_at": now,
                "updated_at": now,
                "encoding": measured.encoding if measured else None,
                "segments": measured.parts if measured else None,
                "route": route.name,
            }
        )
    if quiet:
        _hold_quiet(records, quiet_hours_mod.Window.parse(quiet), due)
    return records


def enqueue_route(
    route_name: str,
    recipients: Sequence[Mapping[str, Any]],
    *,
    defaults: Mapping[str, Any] | None = None,
    idempotency_key: str | None = None,
    not_before: datetime | None = None,
    allow_duplicates: bool = False,
    lane: Lane | None = None,
    callback_url: str | None = None,
    quiet_hours: str | None = None,
    cfg: Settings | None = None,
) -> Enqueued:
    """Validate and store a routed job; durable when it returns. ``quiet_hours`` as in
    :class:`~teledispatch.producer.jobs.SendJob` (None: the first member's)."""
    cfg = cfg or settings()
    lane = lane or Lane()
    check_options(lane, callback_url, cfg.webhooks)
    quiet = _check_quiet_hours(quiet_hours)
    route = _route(cfg, route_name)
    rows = validate_route_job(cfg, route, list(recipients), defaults or {}, allow_duplicates)
    start_at = _as_epoch(not_before)
    # The job's account is the first member its first recipient may use: the lane defaults
    # and the status line are that account's; the webhook default is the route's, else its.
    first = cfg.account(route.accounts_for(rows[0][1])[0])
    priority, expires_at = lane.resolve(first, max(time.time(), start_at or 0.0))
    tail: list[Any] = [start_at, *_lane_key(lane), callback_url]
    if lane.weight is not None or quiet:  # so the hash of a job without them is unchanged
        tail += [lane.weight, quiet]
    digest = content_hash(route.name, rows, tail)
    window = quiet_hours_mod.resolve(
        quiet, first.quiet_hours, priority_word(priority), route.quiet_hours
    )
    job_id = new_job_id()
    header = {
        "id": job_id,
        "account": first.name,
        "channel": first.channel,
        "total": len(rows),
        "parts": -(-len(rows) // PART_SIZE),
        "defaults": json.dumps(dict(defaults or {}), ensure_ascii=False, default=str),
        "idempotency_key": idempotency_key,
        "content_hash": digest,
        "not_before": start_at,
        "created_at": time.time(),
        "priority": priority,
        "expires_at": expires_at,
        "callback_url": callback_url or route.callback_url or first.callback_url or None,
        "route": route.name,
        "weight": lane.stored_weight(),
        "quiet_hours": window,
    }
    paused = _Circuits(cfg.redis_url)
    counts: dict[str, int] = {}

    def part(start: int) -> list[dict[str, Any]]:
        # Built per part, so only one part's message rows exist at a time.
        chunk = rows[start : start + PART_SIZE]
        records = _records(cfg, route, job_id, chunk, start_at, header_lane, window, paused)
        for record in records:
            counts[record["account"]] = counts.get(record["account"], 0) + 1
        return records

    header_lane = (priority, expires_at)
    engine = get_engine(cfg.database_url)
    ensure_schema(cfg.database_url)
    try:
        with engine.begin() as conn:
            jobs_db.insert_jobs(conn, [header])
            # Opted-out recipients are screened per the member each row is stored on (its
            # list and the global one), as the account path's parts are.
            screen.store(conn, part(0), fresh=True)
    except IntegrityError:
        if idempotency_key is None:
            raise
        return _existing(engine, idempotency_key, digest)
    for start in range(PART_SIZE, len(rows), PART_SIZE):
        with engine.begin() as conn:
            screen.store(conn, part(start), fresh=True)
    for account, n in counts.items():
        wake_if_due(cfg, cfg.account(account), start_at, n)
    return Enqueued(job_id, len(rows), created=True)


def content_hash(name: str, rows: Sequence[tuple[int, str, str]], tail: Sequence[Any]) -> str:
    """The SHA-256 of ``[name, rows, *tail]`` as compact JSON, fed row by row: the same
    digest as encoding the whole list at once (earlier releases did), without building
    the job's whole JSON text in memory."""
    digest = hashlib.sha256(f"[{_encode(name)},[".encode())
    for i, row in enumerate(rows):
        digest.update(("," if i else "").encode() + _encode(list(row)).encode())
    digest.update(("]" + "".join("," + _encode(x) for x in tail) + "]").encode())
    return digest.hexdigest()


def _lane_key(lane: Lane) -> tuple[str | None, float | None, float | None]:
    """The lane as given (not as resolved: a TTL resolves against the clock)."""
    return (lane.priority, lane.ttl_s, _as_epoch(lane.expires_at))


def _existing(engine: Any, key: str, digest: str) -> Enqueued:
    with engine.connect() as conn:
        job = jobs_db.by_idempotency_key(conn, key)
    if job.content_hash != digest:
        raise IdempotencyConflict(
            f"idempotency key {key!r} was already used for job {job.id} with different "
            "content; use a new key for a different job"
        )
    return Enqueued(job.id, job.total, created=False)
