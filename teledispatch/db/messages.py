"""Every statement on the ``messages`` and ``batches`` tables, each one statement or one
short transaction.

Claims are compare-and-set: a claim moves due rows to ``sending`` under a fresh ``claim_token``
and a lease; every later write names that token, so a worker whose lease expired (and whose
messages were claimed again by someone else) cannot overwrite the newer outcome.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import starmap
from operator import attrgetter
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine

from teledispatch.channels.base import Receipt
from teledispatch.config import AccountConfig
from teledispatch.db import events as events_db
from teledispatch.db import jobs as jobs_db
from teledispatch.db.tables import AnyRow, batches_table, literal_status, messages_table
from teledispatch.priorities import PRIORITY_ORDER
from teledispatch.statuses import (
    ACTIVE_STATUSES,
    CANCELLED,
    CLAIMABLE,
    DEFERRED,
    EXPIRED,
    FAILED,
    QUEUED,
    SENDING,
    SENT,
    SETTLEABLE,
    UNKNOWN,
    UNRECONCILED,
)

m = messages_table.c
log = logging.getLogger("teledispatch.repo")

#: An ambiguous message is first asked about this long after the attempt.
RECONCILE_AFTER_S = 2.0


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


def _claim_statement(dialect: str, status: str) -> Any:
    """The claim's UPDATE … RETURNING for one status, with the account, the time, the row
    count and the token as bound parameters (``b_…``: an UPDATE reserves column names).

    Built once per (dialect, status) and reused (``_CLAIM_STATEMENTS``): constructing it anew
    for every claim cost about as much client CPU as reading the rows it returned.

    One status per scan: ``status = X AND due_at <= now ORDER BY due_at`` walks the
    ``(account, status, due_at)`` index and stops after ``limit`` rows, where ``status IN
    (…)`` made PostgreSQL read and sort every queued row (29 ms at 100,000 queued, 0.1 ms
    this way).
    """
    (lit,) = literal_status(status)  # a literal, so the partial claim index applies
    now = sa.bindparam("b_now", type_=sa.Float)
    due = (
        sa.select(m.id)
        .where(m.account == sa.bindparam("b_account", type_=sa.String), m.status == lit)
        .where(m.priority == sa.bindparam("b_priority", type_=sa.Integer))
        .where(m.due_at <= now)
        .order_by(m.due_at)
        .limit(sa.bindparam("b_want", type_=sa.Integer))
    )
    picked: Any = sa.and_(m.id.in_(due.scalar_subquery()), m.status == lit)
    if dialect == "postgresql":
        # SKIP LOCKED: concurrent claimers take disjoint rows instead of queueing.
        # ``= ANY(ARRAY(…))`` runs the subquery exactly once: under ``IN (…)`` the
        # planner may re-run it per row, and each run skips the rows the previous one
        # locked, so LIMIT stops bounding the update (seen: 2,850 rows for LIMIT 50).
        # No second status test outside: the rows are locked by the subquery, which
        # re-checked its WHERE on their latest version, and a status test here let the
        # planner (with statistics from before a bulk load) fetch every queued row
        # through the claim index and filter them by id: 89 ms instead of 2 ms per
        # claim at 20,000 queued.
        #
        # The rows are then found by their ``ctid`` (the physical address the subquery just
        # locked): a TID scan, where ``id = ANY(…)`` descended the primary key 200 times
        # (2.3 → 1.9 ms per 200-row claim). The lock keeps the row where it is until this
        # statement updates it. A row someone updated (still claimable) between this
        # statement's snapshot and its lock is left for the next claim, never lost.
        due = due.with_only_columns(sa.literal_column("messages.ctid")).with_for_update(
            skip_locked=True
        )
        picked = sa.literal_column("messages.ctid") == sa.any_(sa.func.array(due.scalar_subquery()))
    return (
        sa.update(messages_table)
        .where(picked)
        .values(
            status=SENDING,
            claim_token=sa.bindparam("b_token", type_=sa.String),
            # The lease is the batch row's. NULL here also keeps a sweep of the
            # previous release (which reads this column) away from new claims.
            lease_until=None,
            attempts=m.attempts + 1,
            updated_at=now,
            sent_at=None,
        )
        .returning(m.id, m.phone, m.group_key, m.payload, m.attempts, m.job_id, m.expires_at)
    )


_CLAIM_STATEMENTS: dict[tuple[str, str], Any] = {}
#: (lane, status) in the order a claim takes them: due ``deferred`` rows of a lane first (few,
#: and older than the queue), then its ``queued`` ones; a lane before the next.
_CLAIM_ORDER = tuple((p, s) for p in PRIORITY_ORDER for s in (DEFERRED, QUEUED))
_group_key = attrgetter("group_key")


def claim(engine: Engine, account: str, limit: int, lease_s: float, now: float) -> Claim:
    """Take up to ``limit`` due messages of ``account`` under a fresh token and lease.

    Due ``deferred`` rows are taken first: they are few, and older than the queue (see
    ``_claim_statement`` for the scan).

    The lease lives in one ``batches`` row per group key (one request each), written in the
    same transaction, so a claim is never visible without its lease: the sweep can always
    find what it must take back.
    """
    token = uuid.uuid4().hex
    messages: list[Claimed] = []
    with engine.begin() as conn:
        dialect = conn.dialect.name
        # Lanes in order (high, normal, low), each its own index range: a lane is reached
        # only when the ones before it have nothing due.
        for priority, status in _CLAIM_ORDER:
            want = limit - len(messages)
            if want <= 0:
                break
            stmt = _CLAIM_STATEMENTS.get((dialect, status))
            if stmt is None:
                stmt = _CLAIM_STATEMENTS[(dialect, status)] = _claim_statement(dialect, status)
            params = {
                "b_account": account,
                "b_now": now,
                "b_want": want,
                "b_token": token,
                "b_priority": priority,
            }
            # Rows unpacked in RETURNING order: access by name cost ~1 µs per row.
            messages.extend(starmap(Claimed, conn.execute(stmt, params).all()))
        expired = _expire_claimed(conn, token, messages, now)
        if expired:
            messages = [c for c in messages if c.id not in expired]
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
    return Claim(token, messages, len(expired))


@dataclass(frozen=True, slots=True)
class Update:
    """The new state of one claimed message."""

    id: str
    status: str
    provider_id: str | None = None
    error_code: str | None = None
    error_text: str | None = None
    due_at: float | None = None
    #: Give the attempt back (provider throttling is not the recipient's fault).
    refund_attempt: bool = False

    # Named constructors: one per kind of outcome, so no caller spells a row of Nones.

    @classmethod
    def sent(cls, id: str, provider_id: str | None) -> Update:
        """Accepted by the provider (``sent_at`` is the ``now`` given to :func:`apply`)."""
        return cls(id, SENT, provider_id)

    @classmethod
    def failed(cls, id: str, code: str | None = None, text: str | None = None) -> Update:
        return cls(id, FAILED, None, code, text)

    @classmethod
    def retry(cls, id: str, due_at: float, code: str | None, text: str | None) -> Update:
        """Queued again at ``due_at``; the attempt counts."""
        return cls(id, QUEUED, None, code, text, due_at)

    @classmethod
    def requeue(
        cls, id: str, due_at: float, code: str | None = None, text: str | None = None
    ) -> Update:
        """Queued again at ``due_at`` with the attempt given back: it never reached the
        provider through any fault of the recipient's (held back, or throttled)."""
        return cls(id, QUEUED, None, code, text, due_at, True)

    @classmethod
    def deferred(cls, id: str, due_at: float, code: str | None, text: str | None) -> Update:
        """Held by a window until ``due_at``; the attempt is given back."""
        return cls(id, DEFERRED, None, code, text, due_at, True)

    @classmethod
    def unknown(cls, id: str, due_at: float, code: str | None, text: str | None) -> Update:
        """May have been sent: asked about (reconciled) from ``due_at``."""
        return cls(id, UNKNOWN, None, code, text, due_at)


# Outcomes of one batch, written by one UPDATE … FROM a relation of (id, new values): one
# round trip and one plan however many rows, where a statement per row cost ~90 µs per
# message on PostgreSQL (every ``sent`` carries its own provider id, so they could not be
# grouped). ``COALESCE(v.provider_id, …)`` keeps an earlier provider id when the outcome has
# none, and ``sent_at`` is set only by a ``sent`` outcome, as the per-row statements did.
_SET = """
    status = v.status,
    provider_id = COALESCE(v.provider_id, messages.provider_id),
    error_code = v.error_code,
    error_text = v.error_text,
    due_at = v.due_at,
    attempts = messages.attempts - v.refund,
    sent_at = CASE WHEN v.status = 'sent' THEN :now ELSE messages.sent_at END,
    lease_until = NULL,
    updated_at = :now
"""
_HELD = "messages.id = v.id AND messages.claim_token = :token AND messages.status = 'sending'"
# Both databases: the rows as ONE JSON array of positional arrays, unpacked by the server.
# PostgreSQL: ``jsonb_array_elements``, where one array parameter per column (``unnest``) made
# psycopg quote every element in Python (~4.5 µs of client CPU per message against ~2.5 this
# way, measured over 200-row batches); jsonb rather than json because the server parses the
# text once instead of once per ``->>`` (~2 µs/message less wall). ``->>`` gives SQL NULL
# for a JSON null, text as it was (jsonb keeps strings verbatim), and a number's digits as
# written, so ``repr``'s shortest round-trip float comes back bit for bit. The statement text
# (and its prepared plan) is the same for every batch size.
_APPLY_PG = sa.text(
    f"UPDATE messages SET {_SET} FROM (SELECT "
    "e->>0 AS id, e->>1 AS status, e->>2 AS provider_id, e->>3 AS error_code, "
    "e->>4 AS error_text, CAST(e->>5 AS FLOAT8) AS due_at, CAST(e->>6 AS INTEGER) AS refund "
    f"FROM jsonb_array_elements(CAST(:rows AS JSONB)) AS e) AS v WHERE {_HELD}"
    # (id, job_id) of the rows changed: what the outbox needs to know (record_changes).
    " RETURNING messages.id, messages.job_id"
)
# SQLite (UPDATE … FROM needs 3.33): the same array, unpacked by json_each.
_APPLY_SQLITE = sa.text(
    f"UPDATE messages SET {_SET} FROM (SELECT "
    "json_extract(value, '$[0]') AS id, json_extract(value, '$[1]') AS status, "
    "json_extract(value, '$[2]') AS provider_id, json_extract(value, '$[3]') AS error_code, "
    "json_extract(value, '$[4]') AS error_text, json_extract(value, '$[5]') AS due_at, "
    "json_extract(value, '$[6]') AS refund "
    f"FROM json_each(:rows)) AS v WHERE {_HELD}"
    " RETURNING messages.id, messages.job_id"
)


def _storable(value: str | None, width: int) -> str | None:
    """Provider text as its column can hold it: at most ``width`` characters, no NUL and no
    lone surrogate (both arrive in valid JSON as ``\u0000`` / ``\ud800``; PostgreSQL
    refuses them and SQLite stores bytes it cannot read back), ``""`` as NULL.

    Without this, one odd answer made a whole batch's outcomes unwritable: the batch stayed
    claimed until the sweep turned it into ``unknown``."""
    if not value:
        return None
    if not value.isascii():
        value = value.encode("utf-8", "replace").decode("utf-8")
    if "\x00" in value:
        value = value.replace("\x00", "")
    return value[:width] or None


#: The ``provider_id`` column's width (migration 0003): every adapter bounds its ids within it.
PROVIDER_ID_WIDTH = 500


def _provider_id(u: Update) -> str | None:
    """The provider's id as given, or NULL if no column could hold it exactly.

    Unlike error text, an id is never altered: a shortened or repaired one would match no
    receipt or status query, and look valid. Missing is the honest outcome (logged)."""
    value = u.provider_id
    if not value:
        return None
    if _storable(value, PROVIDER_ID_WIDTH) != value:  # too long, a NUL or a lone surrogate
        log.warning("message %s: provider id of %d characters not storable", u.id, len(value))
        return None
    return value


# The batch row of a request whose messages all have their outcome, deleted in the same
# transaction. ``status = 'sending'`` verbatim: the partial ``ix_messages_sending`` answers.
_FINISH = sa.text(
    "DELETE FROM batches WHERE claim_token = :token AND group_key = :group AND NOT EXISTS ("
    "SELECT 1 FROM messages WHERE messages.claim_token = :token "
    "AND messages.status = 'sending' AND messages.group_key = :group)"
)


_LOCK_BATCH = sa.text(
    "SELECT 1 FROM batches WHERE claim_token = :token AND group_key = :group FOR UPDATE"
)


def apply(
    engine: Engine,
    token: str,
    updates: Iterable[Update],
    now: float,
    *,
    finish: str | None = None,
) -> int:
    """Write outcomes for messages still held under ``token``; returns rows changed.

    Compare-and-set per row: only a message still ``sending`` under this claim changes, so an
    outcome arriving after the sweep took the batch back is dropped. One statement per call
    (see ``_SET``); an id given twice keeps its first outcome, as the provider's first
    answer stands.

    ``finish``: the group key of a request whose outcomes these are; its ``batches`` row is
    deleted too, unless a message of it is still ``sending``. Left to the sweep, finished
    batch rows piled up until their leases expired, and deleting them made every sweep of a
    1,000,000-message run a transaction of seconds (~100 s of the server's CPU in all).
    """
    rows: dict[str, tuple[Any, ...]] = {}
    for u in updates:
        if u.id in rows:
            continue
        pid = _provider_id(u)
        code = _storable(u.error_code, 64)
        text = _storable(u.error_text, 1000)
        due = float(u.due_at if u.due_at is not None else now)  # a REAL, even if given an int
        refund = 1 if u.refund_attempt else 0
        rows[u.id] = (u.id, u.status, pid, code, text, due, refund)
    if not rows and finish is None:
        return 0
    # Due times are finite (now plus bounded delays), so the JSON is standard (no NaN).
    params = {"rows": json.dumps(list(rows.values())), "token": token, "now": now}
    changed = 0
    with engine.begin() as conn:
        if finish is not None and conn.dialect.name == "postgresql":
            # The batch row first, as the sweep locks it (its DELETE) before the messages:
            # locking the messages first and the row second deadlocked with a sweep taking
            # the same expired batch back. SQLite serialises writers and needs no order.
            conn.execute(_LOCK_BATCH, {"token": token, "group": finish})
        if rows:
            # SQLite: UPDATE … FROM needs 3.33; the claim's RETURNING already needs 3.35.
            stmt = _APPLY_PG if conn.dialect.name == "postgresql" else _APPLY_SQLITE
            done = conn.execute(stmt, params).all()
            changed = len(done)
            record_changes(conn, done, now)
        if finish is not None:
            conn.execute(_FINISH, {"token": token, "group": finish})
    return changed


def mark_departing(engine: Engine, token: str, group_key: str, now: float) -> bool:
    """Record that the request for this claim's ``group_key`` is about to leave; False if it
    must not: the lease ran out (the sweep may take the batch back at any moment, or already
    did and deleted the row), or it already departed once.

    One row per request whatever its size, where marking every message cost ~50 µs each.
    The compare-and-set and the sweep's DELETE both write this row, so they serialize on its
    lock: either this returns True and the sweep then sees ``departed_at`` (and reconciles),
    or the sweep came first and this returns False (and the worker does not send)."""
    b = batches_table.c
    with engine.begin() as conn:
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
    with engine.begin() as conn:
        conn.execute(
            sa.update(batches_table)
            .where(b.claim_token == token, b.group_key == group_key)
            .values(departed_at=None)
        )


#: Batch keys per ``(claim_token, group_key) IN (…)`` list in the sweep.
RECLAIM_CHUNK = 300


def reclaim_expired(engine: Engine, accounts: Iterable[AccountConfig], now: float) -> int:
    """Messages whose worker vanished mid-batch are driven on from the database.

    Each expired ``batches`` row is deleted (which is what makes a later departure attempt
    fail), and its messages still ``sending`` under that claim move on:

    Not departed: back to ``queued`` (or ``failed`` once out of attempts: a batch that kills
    its worker every time must not cycle forever — the attempt was counted at claim).
    Departed: the provider may have it, so like any ambiguous send it is reconciled
    (``unknown``, on the last attempt too), or resent / failed if the account's policy says
    so (a resend needs an attempt left).

    Claims made by the previous release (lease and departure on each message, no batch row)
    are reclaimed the old way, from ``messages.lease_until`` and ``sent_at``.
    """
    b = batches_table.c
    changed = 0
    with engine.begin() as conn:
        for account in accounts:
            lost = conn.execute(
                sa.delete(batches_table)
                .where(b.account == account.name, b.lease_until < now)
                .returning(b.claim_token, b.group_key, b.departed_at)
            ).all()
            departed = [(r.claim_token, r.group_key) for r in lost if r.departed_at is not None]
            stayed = [(r.claim_token, r.group_key) for r in lost if r.departed_at is None]
            (sending,) = literal_status(SENDING)
            held = sa.and_(m.account == account.name, m.status == sending)
            # A claim made by the previous release before the upgrade marks its departure on
            # the messages (``sent_at``), not on the batch row the migration gave it: honour
            # that too, or such a batch leaving after the upgrade would be requeued and sent
            # twice. New claims clear ``sent_at``, so for them this is False.
            stayed_departed = m.sent_at.is_not(None)
            for keys, was_departed in ((departed, True), (stayed, stayed_departed)):
                for i in range(0, len(keys), RECLAIM_CHUNK):
                    chunk = keys[i : i + RECLAIM_CHUNK]
                    where = sa.and_(
                        held,
                        m.claim_token.in_({t for t, _ in chunk}),  # ix_messages_sending
                        sa.tuple_(m.claim_token, m.group_key).in_(chunk),
                    )
                    changed += _reclaim(conn, account, where, was_departed, now)
            legacy = sa.and_(held, m.lease_until.is_not(None), m.lease_until < now)
            changed += _reclaim(conn, account, legacy, m.sent_at.is_not(None), now)
    return changed


def _reclaim(
    conn: sa.Connection, account: AccountConfig, expired: Any, departed: Any, now: float
) -> int:
    """Move the lost messages ``expired`` on; ``departed`` says whether they may have been
    sent (True/False for a whole batch, or a per-row condition)."""
    lost = "worker lost the batch"
    # Departed first: a request that may have reached the provider is reconciled (or failed as
    # "may have been sent") even when it was the last attempt; "failed: worker lost" would
    # claim it was not sent, which nobody knows.
    steps: list[tuple[Any, dict[str, Any]]] = []
    if departed is not False:
        gone = expired if departed is True else sa.and_(expired, departed)
        if account.on_ambiguous == "reconcile":
            steps.append(
                (
                    gone,
                    {
                        "status": UNKNOWN,
                        "error_code": "worker_lost",
                        "error_text": f"{lost} after sending",
                        # asked about a little later, like any ambiguous send
                        "due_at": now + RECONCILE_AFTER_S,
                    },
                )
            )
        elif account.on_ambiguous == "fail":
            steps.append(
                (
                    gone,
                    {
                        "status": FAILED,
                        "error_code": "worker_lost",
                        "error_text": f"{lost} after sending; may have been sent",
                    },
                )
            )
    steps.append(
        (
            sa.and_(expired, m.attempts >= account.max_attempts),
            {
                "status": FAILED,
                "error_code": "worker_lost",
                "error_text": f"{lost} {account.max_attempts} times",
            },
        )
    )
    steps.append((expired, {"status": QUEUED, "due_at": now}))
    changed = 0
    for where, values in steps:
        done = conn.execute(
            sa.update(messages_table)
            .where(where)
            .values(claim_token=None, lease_until=None, updated_at=now, **values)
            .returning(m.id, m.job_id)
        ).all()
        changed += len(done)
        record_changes(conn, done, now)
    return changed


def has_due(engine: Engine, account: str, now: float) -> bool:
    with engine.connect() as conn:
        return (
            conn.execute(
                sa.select(m.id)
                .where(
                    m.account == account,
                    m.status.in_(literal_status(*CLAIMABLE)),
                    m.due_at <= now,
                )
                .limit(1)
            ).first()
            is not None
        )


#: What ``json.loads`` calls for a str with no options, minus its per-call argument checks.
_decode_json = json.JSONDecoder().decode


def payload_of(payload: str) -> dict[str, Any]:
    try:
        value = _decode_json(payload)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


# --- storing a job's recipients (the producer) -------------------------------------------

#: From this many rows a new job's part goes by ``COPY`` on PostgreSQL (below it, the extra
#: round trip of a COPY costs more than it saves).
COPY_MIN_ROWS = 64


def insert_messages(
    conn: sa.Connection, rows: Sequence[dict[str, Any]], *, fresh: bool = False
) -> None:
    """Insert, skipping ids already present: storing the same part twice changes nothing.

    ``fresh`` promises that none of the ids can exist yet (a job id minted a moment ago). On
    PostgreSQL such rows go by ``COPY``, several times cheaper per row than INSERT, for the
    producer and for the server; ``COPY`` cannot skip conflicts, hence the promise.
    """
    if not rows:
        return
    if fresh and conn.dialect.name == "postgresql" and len(rows) >= COPY_MIN_ROWS:
        _copy_messages(conn, rows)
        return
    if conn.dialect.name == "postgresql":
        stmt: Any = postgresql.insert(messages_table).on_conflict_do_nothing(index_elements=["id"])
    else:
        stmt = sqlite.insert(messages_table).on_conflict_do_nothing(index_elements=["id"])
    conn.execute(stmt, list(rows))


def _copy_messages(conn: sa.Connection, rows: Sequence[dict[str, Any]]) -> None:
    columns = list(rows[0])
    preparer = conn.dialect.identifier_preparer
    names = ", ".join(preparer.quote(c) for c in columns)
    sql = f"COPY {preparer.quote(messages_table.name)} ({names}) FROM STDIN"
    raw: Any = conn.connection.dbapi_connection
    with raw.cursor() as cur, cur.copy(sql) as copy:
        for row in rows:
            copy.write_row([row[c] for c in columns])


def count_job_messages(conn: sa.Connection, job_id: str) -> int:
    """How many of the job's recipients are stored."""
    return int(conn.execute(sa.select(sa.func.count()).where(m.job_id == job_id)).scalar_one())


# --- cancelling (the producer) -------------------------------------------------------------


def cancel_unclaimed(conn: sa.Connection, job_id: str, now: float) -> int:
    """The job's messages no worker has claimed become ``cancelled``; returns how many.

    The status condition is the compare-and-set: a row a worker claimed a moment ago is
    ``sending`` and is not touched."""
    stmt = (
        sa.update(messages_table)
        .where(m.job_id == job_id, m.status.in_(CLAIMABLE))
        .values(status=CANCELLED, updated_at=now, error_code=None, error_text=None)
    )
    if not _targets(conn, [job_id]):
        # No callback: no RETURNING of what may be a million ids.
        return int(conn.execute(stmt).rowcount or 0)
    done = conn.execute(stmt.returning(m.id, m.job_id)).all()
    record_changes(conn, done, now)
    return len(done)


# --- reading outcomes back (lookups) -------------------------------------------------------


def status_counts(conn: sa.Connection, job_id: str) -> dict[str, int]:
    """The job's messages per status (``GROUP BY`` on ``ix_messages_job_status``)."""
    rows = conn.execute(
        sa.select(m.status, sa.func.count()).where(m.job_id == job_id).group_by(m.status)
    ).all()
    return {str(status): int(n) for status, n in rows}


def count_reconciling(conn: sa.Connection, job_id: str) -> int:
    """The job's ``unknown`` messages reconciliation has not given up on."""
    return int(
        conn.execute(
            sa.select(sa.func.count()).where(
                m.job_id == job_id,
                m.status == UNKNOWN,
                sa.or_(m.error_code.is_(None), m.error_code != UNRECONCILED),
            )
        ).scalar_one()
    )


def next_due_at(conn: sa.Connection, job_id: str, now: float) -> float | None:
    """When the job's first waiting message that is not due yet becomes due."""
    value = conn.execute(
        sa.select(sa.func.min(m.due_at)).where(
            m.job_id == job_id, m.status.in_(CLAIMABLE), m.due_at > now
        )
    ).scalar()
    return None if value is None else float(value)


def find_messages(
    conn: sa.Connection,
    *,
    phone: str | None = None,
    provider_id: str | None = None,
    message_id: str | None = None,
    limit: int = 100,
) -> list[AnyRow]:
    """Whole rows matching every given key, newest first."""
    query = sa.select(messages_table)
    if phone is not None:
        query = query.where(m.phone == phone)
    if provider_id is not None:
        query = query.where(m.provider_id == provider_id)
    if message_id is not None:
        query = query.where(m.id == message_id)
    query = query.order_by(m.created_at.desc(), m.id).limit(limit)
    return list(conn.execute(query).all())


def job_messages_page(
    conn: sa.Connection,
    job_id: str,
    *,
    status: str | None = None,
    after: str | None = None,
    limit: int = 100,
) -> list[AnyRow]:
    """One page of the job's whole rows in id order, after the id ``after``."""
    query = sa.select(messages_table).where(m.job_id == job_id)
    if status is not None:
        query = query.where(m.status == status)
    if after is not None:
        query = query.where(m.id > after)
    query = query.order_by(m.id).limit(limit)
    return list(conn.execute(query).all())


# --- reconciliation (the worker) -----------------------------------------------------------


def due_unknown(engine: Engine, account: str, now: float, limit: int) -> list[AnyRow]:
    """The account's ``unknown`` messages due for a status query, oldest due first:
    ``(id, phone, payload, attempts, updated_at, error_text)``."""
    with engine.connect() as conn:
        return list(
            conn.execute(
                sa.select(m.id, m.phone, m.payload, m.attempts, m.updated_at, m.error_text)
                .where(
                    m.account == account,
                    m.status.in_(literal_status(UNKNOWN)),  # literal: the partial claim index
                    sa.or_(m.error_code.is_(None), m.error_code != UNRECONCILED),
                    m.due_at <= now,
                )
                .order_by(m.due_at)
                .limit(limit)
            ).all()
        )


def set_if_unknown(engine: Engine, message_id: str, now: float, **values: object) -> int:
    """Compare-and-set on status: only a message still ``unknown`` is changed."""
    with engine.begin() as conn:
        done = conn.execute(
            sa.update(messages_table)
            .where(m.id == message_id, m.status == UNKNOWN)
            .values(updated_at=now, **values)
            .returning(m.id, m.job_id)
        ).all()
        record_changes(conn, done, now)
    return len(done)


__all__ = [
    "COPY_MIN_ROWS",
    "FAILED",
    "QUEUED",
    "SENT",
    "UNKNOWN",
    "Claim",
    "Claimed",
    "Update",
    "apply",
    "cancel_unclaimed",
    "claim",
    "count_job_messages",
    "count_reconciling",
    "due_unknown",
    "find_messages",
    "has_due",
    "insert_messages",
    "job_messages_page",
    "mark_departing",
    "next_due_at",
    "reclaim_expired",
    "set_if_unknown",
    "status_counts",
    "unmark_departing",
]


@dataclass(frozen=True)
class Backlog:
    """What the metrics endpoint reports, read in one connection."""

    #: ``(channel, account, status, messages)`` over the whole table.
    counts: list[tuple[str, str, str, int]]
    #: ``(channel, account, oldest due_at)`` of due, unclaimed messages.
    oldest_due: list[tuple[str, str, float]]


def backlog(engine: Engine, now: float) -> Backlog:
    """Messages per channel/account/status, and the oldest due unclaimed one per account.

    A GROUP BY over the whole table (index-assisted on PostgreSQL): meant for a scrape every
    15 s or slower, not for a hot path.
    """
    with engine.connect() as conn:
        counts = conn.execute(
            sa.select(m.channel, m.account, m.status, sa.func.count()).group_by(
                m.channel, m.account, m.status
            )
        ).all()
        oldest = conn.execute(
            sa.select(m.channel, m.account, sa.func.min(m.due_at))
            .where(m.status.in_(literal_status(QUEUED, DEFERRED)), m.due_at <= now)
            .group_by(m.channel, m.account)
        ).all()
    return Backlog(
        counts=[(str(c), str(a), str(s), int(n)) for c, a, s, n in counts],
        oldest_due=[(str(c), str(a), float(due)) for c, a, due in oldest],
    )


# --- delivery receipts ------------------------------------------------------------------------


def settle(
    engine: Engine,
    account: str,
    receipt: Receipt,
    *,
    message_id: str | None = None,
    provider_id: str | None = None,
    now: float | None = None,
) -> int:
    """Apply one receipt to the matching message(s) still ``sent``/``unknown``; returns how
    many moved.

    **First final wins.** The status guard in the ``WHERE`` is the whole duplicate story:
    providers retry pushes and carriers send late or contradictory reports, and a terminal
    state is never rewritten. A receipt for a message still ``sending`` is not applied.
    """
    if (message_id is None) == (provider_id is None):
        raise ValueError("settle needs exactly one of message_id or provider_id")
    now = time.time() if now is None else now
    c = messages_table.c
    where = [c.account == account, c.status.in_(SETTLEABLE)]
    where.append(c.id == message_id if message_id is not None else c.provider_id == provider_id)
    values: dict[str, Any] = {
        "status": receipt.status,
        "error_code": None if receipt.delivered else receipt.code,
        "error_text": None if receipt.delivered else receipt.text,
        "final_at": now,
        "updated_at": now,
        # An ``unknown`` message has no send time: the receipt proves it left.
        "sent_at": sa.func.coalesce(c.sent_at, now),
    }
    if message_id is not None:
        # NXCloud's messageid is our id; an ambiguous send may not have recorded it yet.
        values["provider_id"] = sa.func.coalesce(c.provider_id, message_id)
    with engine.begin() as conn:
        done = conn.execute(
            sa.update(messages_table).where(*where).values(**values).returning(c.id, c.job_id)
        ).all()
        record_changes(conn, done, now)
    return len(done)


def due_for_receipt_poll(
    engine: Engine,
    account: str,
    channel: str,
    *,
    sent_before: float,
    sent_after: float,
    now: float,
    limit: int,
) -> list[Any]:
    """Rows ``(id, phone, provider_id)`` of ``account`` whose receipt poll is due: ``sent`` or
    ``unknown`` with a provider id, sent within ``(sent_after, sent_before]``, oldest due first.
    ``due_at`` is unused once a message has left, so it doubles as "poll again at"."""
    c = messages_table.c
    sent_at = sa.func.coalesce(c.sent_at, c.updated_at)
    with engine.connect() as conn:
        return list(
            conn.execute(
                sa.select(c.id, c.phone, c.provider_id)
                .where(
                    c.account == account,
                    # Literals, so the partial ix_messages_receipt_poll index matches.
                    c.channel == sa.literal_column(repr(channel)),
                    c.status.in_(literal_status(*SETTLEABLE)),
                    c.provider_id.is_not(None),
                    c.due_at <= now,
                    sent_at <= sent_before,
                    sent_at > sent_after,
                )
                .order_by(c.due_at)
                .limit(limit)
            ).all()
        )


def postpone_receipt_poll(engine: Engine, ids: Sequence[str], at: float) -> None:
    """Ask about ``ids`` again at ``at`` (their receipts were not final yet)."""
    if not ids:
        return
    c = messages_table.c
    with engine.begin() as conn:
        conn.execute(
            sa.update(messages_table)
            .where(c.id.in_(list(ids)), c.status.in_(SETTLEABLE))
            .values(due_at=at)
        )


def segment_counts(conn: sa.Connection, job_id: str) -> dict[str, int]:
    """The job's SMS segments per encoding; messages of channels without text are left out."""
    rows = conn.execute(
        sa.select(m.encoding, sa.func.sum(m.segments))
        .where(m.job_id == job_id, m.encoding.is_not(None))
        .group_by(m.encoding)
        .order_by(m.encoding)
    ).all()
    return {str(encoding): int(n or 0) for encoding, n in rows}


def waiting_count(conn: sa.Connection, account: str) -> int:
    """The account's messages waiting to be sent (queued or deferred): the backlog a new job
    queues behind (through ``ix_messages_claim``)."""
    return int(
        conn.execute(
            sa.select(sa.func.count()).where(
                m.account == account, m.status.in_(literal_status(QUEUED, DEFERRED))
            )
        ).scalar_one()
    )


# --- the API's /metrics ----------------------------------------------------------------------

#: What ``/metrics`` counts: the statuses the claim index holds (``ix_messages_claim``).
#: ``sending`` is counted through its own partial index; terminal statuses are not counted at
#: all (they grow with history: the worker's ``teledispatch_messages_total`` counts outcomes).
BACKLOG_STATUSES = (QUEUED, DEFERRED, UNKNOWN)


def active_backlog(engine: Engine, accounts: Sequence[tuple[str, str]], now: float) -> Backlog:
    """Backlog counts and the oldest due message of each ``(channel, account)``, at a cost
    that grows with the backlog, not with the table.

    :func:`backlog` grouped the whole table on every scrape (0.245 s at 106,000 rows). Here
    each account is one statement of scalar subqueries, each an index range (count) or an
    index seek (``min(due_at)``) on ``(account, status, due_at)`` with the status a literal,
    so PostgreSQL's partial index applies; ``sending`` rows, in flight, come from theirs.
    """
    acct = sa.bindparam("b_account", type_=sa.String)
    at = sa.bindparam("b_now", type_=sa.Float)

    def count(status: str) -> Any:
        (lit,) = literal_status(status)
        return sa.select(sa.func.count()).where(m.account == acct, m.status == lit)

    def oldest(status: str) -> Any:
        (lit,) = literal_status(status)
        return sa.select(sa.func.min(m.due_at)).where(
            m.account == acct, m.status == lit, m.due_at <= at
        )

    per_account = sa.select(
        *(count(s).scalar_subquery() for s in BACKLOG_STATUSES),
        oldest(QUEUED).scalar_subquery(),
        oldest(DEFERRED).scalar_subquery(),
    )
    (sending_lit,) = literal_status(SENDING)
    sending = sa.select(m.account, sa.func.count()).where(m.status == sending_lit)
    counts: list[tuple[str, str, str, int]] = []
    oldest_due: list[tuple[str, str, float]] = []
    with engine.connect() as conn:
        in_flight: dict[str, int] = {
            str(a): int(n) for a, n in conn.execute(sending.group_by(m.account)).all()
        }
        for channel, name in accounts:
            row = conn.execute(per_account, {"b_account": name, "b_now": now}).one()
            for status, n in zip(BACKLOG_STATUSES, row[:3], strict=True):
                counts.append((channel, name, str(status), int(n)))
            counts.append((channel, name, str(SENDING), int(in_flight.get(name, 0))))
            dues = [float(d) for d in row[3:] if d is not None]
            if dues:
                oldest_due.append((channel, name, min(dues)))
    return Backlog(counts=counts, oldest_due=oldest_due)


#: The error code of a message that expired before it was sent.
EXPIRED_CODE = "expired"


def _expire_claimed(
    conn: sa.Connection, token: str, claimed: Sequence[Claimed], now: float
) -> set[str]:
    """Rows just claimed whose expiry has passed become ``expired`` in the claim's own
    transaction: they are never handed to a sender. Returns their ids."""
    ids = {c.id for c in claimed if c.expires_at is not None and c.expires_at <= now}
    if ids:
        conn.execute(
            sa.update(messages_table)
            .where(m.id.in_(sorted(ids)), m.claim_token == token, m.status == SENDING)
            .values(
                status=EXPIRED,
                error_code=EXPIRED_CODE,
                error_text="not sent before its expiry",
                updated_at=now,
            )
        )
    return ids


def expire_unsent(engine: Engine, now: float, limit: int = 10_000) -> int:
    """The sweep: ``queued`` and ``deferred`` rows (waiting, held by a window or for a retry)
    past their expiry become ``expired``; returns how many. Bounded per call, so one sweep
    stays short; the next one takes the rest."""
    # The WHERE repeats the partial index's predicate verbatim, so SQLite uses it too.
    where = sa.text("expires_at IS NOT NULL AND status IN ('queued', 'deferred')")
    due = (
        sa.select(m.id)
        .where(where, m.expires_at <= now)
        .order_by(m.expires_at)
        .limit(limit)
        .scalar_subquery()
    )
    with engine.begin() as conn:
        result = conn.execute(
            sa.update(messages_table)
            .where(m.id.in_(due), m.status.in_([QUEUED, DEFERRED]))
            .values(
                status=EXPIRED,
                error_code=EXPIRED_CODE,
                error_text="not sent before its expiry",
                updated_at=now,
            )
        )
    return int(result.rowcount or 0)


# --- the webhook outbox -----------------------------------------------------------------------

#: Changes a webhook does not report: claims, retries and rate-window holds are the
#: dispatcher's business; an app hears of what it can act on (sent, failed, delivered, …).
QUIET_STATUSES = frozenset(ACTIVE_STATUSES)
_EVENT_COLUMNS = (m.id, m.job_id, m.phone, m.status, m.provider_id, m.error_code, m.error_text)
#: (engine, job id) → (account, callback_url): a job's callback never changes once stored, so
#: each process asks once per job instead of once per batch (the dispatch hot path). Keyed
#: by engine too: one process may use several databases (tests reuse job ids across them).
_targets_cache: dict[tuple[Engine, str], tuple[str, str | None]] = {}
_TARGETS_CACHE_MAX = 10_000


def _targets(conn: sa.Connection, job_ids: Iterable[str]) -> dict[str, tuple[str, str]]:
    """``job id → (account, url)`` of those of ``job_ids`` that have a callback."""
    engine = conn.engine
    wanted = set(job_ids)
    missing = [j for j in wanted if (engine, j) not in _targets_cache]
    if missing:
        found = jobs_db.callbacks(conn, missing)
        if len(_targets_cache) + len(found) > _TARGETS_CACHE_MAX:
            _targets_cache.clear()
        _targets_cache.update(((engine, j), target) for j, target in found.items())
    out: dict[str, tuple[str, str]] = {}
    for job_id in wanted:
        account, url = _targets_cache.get((engine, job_id), ("", None))
        if url:
            out[job_id] = (account, url)
    return out


def record_changes(conn: sa.Connection, changed: Sequence[Any], now: float) -> None:
    """Outbox events for rows ``(id, job_id)`` this transaction just changed; nothing (one
    cached lookup) when their jobs have no callback."""
    if not changed:
        return
    targets = _targets(conn, {r[1] for r in changed})
    if not targets:
        return
    ids = [r[0] for r in changed if r[1] in targets]
    order = {message_id: i for i, message_id in enumerate(ids)}
    rows = list(conn.execute(sa.select(*_EVENT_COLUMNS).where(m.id.in_(ids))).all())
    rows.sort(key=lambda r: order[r[0]])
    events_db.insert_events(conn, targets, [r for r in rows if r[3] not in QUIET_STATUSES], now)


def job_is_finished(conn: sa.Connection, job_id: str, total: int) -> bool:
    """Every recipient is stored and none is active or still being reconciled."""
    active = conn.execute(
        sa.select(m.id)
        .where(
            m.job_id == job_id,
            sa.or_(
                m.status.in_(sorted(ACTIVE_STATUSES)),
                sa.and_(
                    m.status == UNKNOWN,
                    sa.or_(m.error_code.is_(None), m.error_code != UNRECONCILED),
                ),
            ),
        )
        .limit(1)
    ).first()
    return active is None and count_job_messages(conn, job_id) >= total


# --- retention -----------------------------------------------------------------------------


def delete_job_messages(engine: Engine, job_id: str, limit: int) -> int:
    """Delete up to ``limit`` of the job's messages in one short transaction; returns how
    many. Small batches: a purge must never hold locks long enough to slow dispatch."""
    with engine.begin() as conn:
        ids = sa.select(m.id).where(m.job_id == job_id).limit(limit).scalar_subquery()
        return int(conn.execute(sa.delete(messages_table).where(m.id.in_(ids))).rowcount or 0)
