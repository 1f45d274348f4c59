"""Claiming due messages under a token and a lease, and the departure compare-and-set.

Claims are compare-and-set: a claim moves due rows to ``sending`` under a fresh ``claim_token``
and a lease; every later write names that token, so a worker whose lease expired (and whose
messages were claimed again by someone else) cannot overwrite the newer outcome.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from teledispatch.db import optouts as optouts_db
from teledispatch.db.engine import one_statement
from teledispatch.db.messages import claim_sql
from teledispatch.db.messages._common import OPTED_OUT_CODE, m
from teledispatch.db.messages.expiry import EXPIRED_CODE
from teledispatch.db.messages.outbox import record_changes
from teledispatch.db.tables import batches_table, literal_status, messages_table
from teledispatch.priorities import PRIORITY_ORDER
from teledispatch.scheduling import Demand, plan
from teledispatch.statuses import (
    CLAIMABLE,
    DEFERRED,
    EXPIRED,
    QUEUED,
    SENDING,
    SUPPRESSED,
)


@dataclass(frozen=True, slots=True)
class Claimed:
    id: str
    phone: str
    group_key: str
    payload: str
    attempts: int
    #: Which job it belongs to: the dispatch task's result names the jobs it served.
    job_id: str = ""
    #: Not to be sent after this (epoch s); None: never expires.
    expires_at: float | None = None


@dataclass(frozen=True, slots=True)
class Claim:
    token: str
    messages: list[Claimed]
    #: Rows this claim found past their expiry and wrote ``expired`` instead of taking.
    expired: int = 0
    #: Rows whose recipient opted out after enqueue, written ``suppressed`` instead.
    suppressed: int = 0
    #: The quiet-hours window stored with each job the claim saw (None: the job has none),
    #: read with the lanes so that the quiet-hours check needs no query of its own.
    quiet_hours: dict[str, str | None] = field(default_factory=dict)


#: Rounds of takes per lane and claim: a round's short jobs (fewer rows due than their
#: share) leave their room to the others in the next.
MAX_ROUNDS = 3


@dataclass(frozen=True, slots=True)
class _LaneJob:
    job_id: str
    weight: float
    created_at: float
    #: Whether it has ``deferred`` rows in the lane (due or not).
    deferred: bool
    #: Its stored quiet-hours window (``jobs.quiet_hours``).
    quiet_hours: str | None = None


def _lanes(
    conn: sa.Connection, account: str, now: float
) -> tuple[dict[int, list[_LaneJob]], set[int]]:
    """Each lane's jobs with waiting rows (due or not), oldest job first; and the lanes with
    due rows held back for a slot (``hold_until`` ahead).

    Their due rows are not counted: that read as many rows again as the take itself (up to
    the room for each job). A job's share is taken on the assumption that it has enough due,
    and the room a short job leaves goes to the others in another round (see
    :func:`_claim_lane`)."""
    params = {"account": account, "now": now, "max_jobs": claim_sql.MAX_JOBS_PER_LANE}
    found: dict[int, dict[str, _LaneJob]] = {}
    held: set[int] = set()
    for priority, status, job_id, weight, created_at, quiet in _lane_rows(conn, params):
        if status == "held":
            held.add(int(priority))
            continue
        lane, j = found.setdefault(int(priority), {}), str(job_id)
        deferred = status == DEFERRED or (j in lane and lane[j].deferred)
        w = float(weight) if weight is not None else 1.0
        lane[j] = _LaneJob(j, w, float(created_at or 0.0), deferred, quiet)
    order = attrgetter("created_at", "job_id")
    return {p: sorted(jobs.values(), key=order) for p, jobs in found.items()}, held


def _lane_rows(conn: sa.Connection, params: dict[str, Any]) -> list[Any]:
    """The lanes query's rows. On PostgreSQL it is the claim's first statement, sent with the
    transaction's BEGIN and the plan setting in one round trip (psycopg's pipeline mode):
    three of the claim's round trips were these, each a wake-up of the server process, which
    a loaded machine makes slow."""
    if conn.dialect.name != "postgresql":
        return list(conn.execute(claim_sql.LANES, params).all())
    raw: Any = conn.connection.driver_connection  # psycopg's Connection
    try:
        with raw.pipeline(), raw.cursor() as cur:
            # A job's rows come from the claim index in order, LIMIT stopping the scan. The
            # planner's other choice, (job_id, status) then a sort, reads and sorts all of
            # the job's rows each claim; it takes it whenever it thinks the job small: for
            # every job before the table's first ANALYZE, and for any job newer than its
            # statistics. Without sorts there is no such plan to take.
            cur.execute(claim_sql.NO_SORT)
            cur.execute(claim_sql.LANES_PG, params)
            return list(cur.fetchall())
    except conn.dialect.loaded_dbapi.Error as exc:
        # Past SQLAlchemy here, so wrapped as it wraps every other statement's error: callers
        # (the worker's outage detection) judge SQLAlchemy's classes, and a connection the
        # server dropped must leave the pool.
        gone = bool(raw.closed)
        if gone:
            conn.invalidate(exc)
        raise sa.exc.DBAPIError.instance(
            claim_sql.LANES_PG,
            params,
            exc,
            conn.dialect.loaded_dbapi.Error,
            connection_invalidated=gone,
            dialect=conn.dialect,
        ) from exc


def _take(
    conn: sa.Connection,
    account: str,
    priority: int,
    status: str,
    takes: Sequence[tuple[str, int]],
    token: str,
    now: float,
    opted: set[str],
) -> list[Claimed]:
    """Claim each job's ``n`` rows of ``status`` in one ``UPDATE … RETURNING``; the ids of
    those whose recipient is on a suppression list now are added to ``opted``."""
    stmt = claim_sql.take_statement(conn.dialect.name, priority, status, len(takes))
    params: dict[str, Any] = {"b_now": now, "b_token": token, "b_account": account}
    for i, (job_id, n) in enumerate(takes):
        params[f"b_job{i}"] = job_id
        params[f"b_n{i}"] = n
    rows = conn.execute(stmt, params).all()
    opted.update(row[0] for row in rows if row[7])
    # Rows unpacked in RETURNING order: access by name cost ~1 µs per row.
    return [Claimed(*row[:7]) for row in rows]


#: Each account's and lane's credits between claims (see ``teledispatch.scheduling``): per
#: process, so each process's claims follow the weights over time, and so do all of them.
_CREDITS: dict[tuple[str, int], dict[str, float]] = {}
_group_key = attrgetter("group_key")


def _take_shares(
    conn: sa.Connection,
    account: str,
    priority: int,
    shares: dict[str, int],
    deferred: set[str],
    token: str,
    now: float,
    opted: set[str],
) -> list[Claimed]:
    """Each job's share of rows: its due ``deferred`` rows first (few, and older than the
    queue), then ``queued`` ones for the rest of its share."""
    got: list[Claimed] = []
    wanted = [(j, n) for j, n in shares.items() if j in deferred]
    if wanted:
        got = _take(conn, account, priority, DEFERRED, wanted, token, now, opted)
    have = Counter(c.job_id for c in got)
    rest = [(j, n - have[j]) for j, n in shares.items() if n > have[j]]
    if rest:
        got += _take(conn, account, priority, QUEUED, rest, token, now, opted)
    return got


def _claim_lane(
    conn: sa.Connection,
    account: str,
    priority: int,
    jobs: Sequence[_LaneJob],
    want: int,
    token: str,
    now: float,
    opted: set[str],
) -> list[Claimed]:
    """One lane's part of a claim: every job with rows due gets its weighted share of the
    room (:func:`teledispatch.scheduling.plan`); a job that had fewer rows due than its share
    leaves the rest to the others in another round."""
    deferred = {j.job_id for j in jobs if j.deferred}
    credit = _CREDITS.get((account, priority), {})
    got: list[Claimed] = []
    short: set[str] = set()
    for _ in range(MAX_ROUNDS):
        room = want - len(got)
        open_jobs = [j for j in jobs if j.job_id not in short]
        if room <= 0 or not open_jobs:
            break
        # Due rows unknown: each is assumed to have the whole room, so shares are by weight.
        demands = [Demand(j.job_id, priority, j.weight, room) for j in open_jobs]
        planned = plan(demands, room, credit)
        takes = planned.takes
        round_got = _take_shares(conn, account, priority, takes, deferred, token, now, opted)
        got += round_got
        have = Counter(c.job_id for c in round_got)
        now_short = {j for j, n in planned.takes.items() if have[j] < n}
        # Credit is carried only by jobs that could use their share: a short one is not owed.
        credit = {j: c for j, c in planned.credit.items() if j not in now_short | short}
        short |= now_short
        if not now_short:
            break
    if credit:
        _CREDITS[(account, priority)] = credit
    else:
        _CREDITS.pop((account, priority), None)
    return got


def claim(engine: Engine, account: str, limit: int, lease_s: float, now: float) -> Claim:
    """Take up to ``limit`` due messages of ``account`` under a fresh token and lease.

    Lanes in order (high, normal, low): a lane is reached only when the ones before it leave
    room. Within a lane each job with rows due gets its weighted share of the room
    (:func:`teledispatch.scheduling.plan`), taken in the job's own order; a job's due
    ``deferred`` rows come before its ``queued`` ones. One request may still carry rows of
    many jobs. A row handed back unsent waits for its ``hold_until`` with its ``due_at``
    (its place) unchanged.

    The lease lives in one ``batches`` row per group key (one request each), written in the
    same transaction, so a claim is never visible without its lease: the sweep can always
    find what it must take back.
    """
    token = uuid.uuid4().hex
    messages: list[Claimed] = []
    opted: set[str] = set()
    with engine.begin() as conn:
        lanes, held = _lanes(conn, account, now)
        for priority in PRIORITY_ORDER:
            want = limit - len(messages)
            if want <= 0:
                break
            if priority in lanes:
                jobs = lanes[priority]
                messages += _claim_lane(conn, account, priority, jobs, want, token, now, opted)
            if len(messages) < limit and priority in held:
                # Held rows keep the lanes below waiting: a lower lane gets only what the ones
                # above leave, and a held row has not left its room (without this, a saturated
                # account's held normal rows let the low lane take the slots they wait for).
                break
        expired = _expire_claimed(conn, token, messages, now)
        suppressed = _suppress_claimed(conn, token, now, opted - expired) if opted else set()
        if expired or suppressed:
            messages = [c for c in messages if c.id not in expired and c.id not in suppressed]
        if messages:
            conn.execute(
                sa.insert(batches_table),
                [
                    {
                        "claim_token": token,
                        "group_key": g,
                        "account": account,
                        "lease_until": now + lease_s,
                        "departed_at": None,
                    }
                    for g in dict.fromkeys(map(_group_key, messages))
                ],
            )
    quiet = {j.job_id: j.quiet_hours for jobs in lanes.values() for j in jobs}
    return Claim(token, messages, len(expired), len(suppressed), quiet)


def _expire_claimed(
    conn: sa.Connection, token: str, claimed: Sequence[Claimed], now: float
) -> set[str]:
    """Rows just claimed whose expiry has passed become ``expired`` in the claim's own
    transaction: they are never handed to a sender, and their webhook events are written in
    that transaction too. Returns their ids."""
    ids = {c.id for c in claimed if c.expires_at is not None and c.expires_at <= now}
    if ids:
        done = conn.execute(
            sa.update(messages_table)
            .where(m.id.in_(sorted(ids)), m.claim_token == token, m.status == SENDING)
            .values(
                status=EXPIRED,
                error_code=EXPIRED_CODE,
                error_text="not sent before its expiry",
                updated_at=now,
            )
            .returning(m.id, m.job_id)
        ).all()
        record_changes(conn, done, now)
    return ids


def _suppress_claimed(conn: sa.Connection, token: str, now: float, ids: set[str]) -> set[str]:
    """Rows just claimed (``ids``, found by the take) whose recipient opted out since enqueue
    become ``suppressed`` in the claim's own transaction, so they are never sent. Returns
    their ids."""
    changed = conn.execute(
        sa.update(messages_table)
        .where(
            m.id.in_(sorted(ids)),
            m.claim_token == token,
            m.status == SENDING,
            optouts_db.opted_out(m.account, m.phone),
        )
        .values(
            status=SUPPRESSED,
            error_code=OPTED_OUT_CODE,
            error_text="the recipient opted out",
            updated_at=now,
        )
        .returning(m.id, m.job_id)
    ).all()
    record_changes(conn, changed, now)
    return {row[0] for row in changed}


def mark_departing(engine: Engine, token: str, group_key: str, now: float) -> bool:
    """Record that the request for this claim's ``group_key`` is about to leave; False if it
    must not: the lease ran out (the sweep may take the batch back at any moment, or already
    did and deleted the row), or it already departed once.

    One row per request whatever its size, where marking every message cost ~50 µs each.
    The compare-and-set and the sweep's DELETE both write this row, so they serialize on its
    lock: either this returns True and the sweep then sees ``departed_at`` (and reconciles),
    or the sweep came first and this returns False (and the worker does not send)."""
    b = batches_table.c
    with one_statement(engine) as conn:
        result = conn.execute(
            sa.update(batches_table)
            .where(
                b.claim_token == token,
                b.group_key == group_key,
                b.departed_at.is_(None),
                b.lease_until >= now,
            )
            .values(departed_at=now)
        )
    return int(result.rowcount or 0) == 1


def unmark_departing(engine: Engine, token: str, group_key: str) -> None:
    """The request did not leave after all (the departure gate refused it)."""
    b = batches_table.c
    with one_statement(engine) as conn:
        conn.execute(
            sa.update(batches_table)
            .where(b.claim_token == token, b.group_key == group_key)
            .values(departed_at=None)
        )


def has_due(engine: Engine, account: str, now: float) -> bool:
    with engine.connect() as conn:
        return (
            conn.execute(
                sa.select(m.id)
                .where(
                    m.account == account,
                    m.status.in_(literal_status(*CLAIMABLE)),
                    m.due_at <= now,
                    sa.or_(m.hold_until.is_(None), m.hold_until <= now),
                )
                .limit(1)
            ).first()
            is not None
        )
