"""Database operations of the dispatcher, each one statement or one short transaction.

Claims are compare-and-set: a claim moves due rows to ``sending`` under a fresh ``claim_token``
and a lease; every later write names that token, so a worker whose lease expired (and whose
messages were claimed again by someone else) cannot overwrite the newer outcome.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from producer.config import AccountConfig
from producer.store import (
    DEFERRED,
    FAILED,
    QUEUED,
    SENDING,
    SENT,
    UNKNOWN,
    messages_table,
)

m = messages_table.c

#: An ambiguous message is first asked about this long after the attempt.
RECONCILE_AFTER_S = 2.0
#: Statuses a claim may pick up once due.
CLAIMABLE = (QUEUED, DEFERRED)


@dataclass(frozen=True, slots=True)
class Claimed:
    id: str
    phone: str
    group_key: str
    payload: str
    attempts: int


@dataclass(frozen=True, slots=True)
class Claim:
    token: str
    messages: list[Claimed]


def claim(engine: Engine, account: str, limit: int, lease_s: float, now: float) -> Claim:
    """Take up to ``limit`` due messages of ``account`` under a fresh token and lease.

    One status per scan: ``status = X AND due_at <= now ORDER BY due_at`` walks the
    ``(account, status, due_at)`` index and stops after ``limit`` rows, where ``status IN
    (…)`` made PostgreSQL read and sort every queued row (29 ms at 100,000 queued, 0.1 ms
    this way). Due ``deferred`` rows are taken first: they are few, and older than the queue.
    """
    token = uuid.uuid4().hex
    rows: list[Any] = []
    with engine.begin() as conn:
        for status in (DEFERRED, QUEUED):
            want = limit - len(rows)
            if want <= 0:
                break
            due = (
                sa.select(m.id)
                .where(m.account == account, m.status == status, m.due_at <= now)
                .order_by(m.due_at)
                .limit(want)
            )
            picked: Any = m.id.in_(due.scalar_subquery())
            if conn.dialect.name == "postgresql":
                # SKIP LOCKED: concurrent claimers take disjoint rows instead of queueing.
                # ``= ANY(ARRAY(…))`` runs the subquery exactly once: under ``IN (…)`` the
                # planner may re-run it per row, and each run skips the rows the previous one
                # locked, so LIMIT stops bounding the update (seen: 2,850 rows for LIMIT 50).
                due = due.with_for_update(skip_locked=True)
                picked = m.id == sa.any_(sa.func.array(due.scalar_subquery()))
            stmt = (
                sa.update(messages_table)
                .where(picked, m.status == status)
                .values(
                    status=SENDING,
                    claim_token=token,
                    lease_until=now + lease_s,
                    attempts=m.attempts + 1,
                    updated_at=now,
                    # Cleared on claim, set just before the request leaves: the sweep's only
                    # evidence of whether a lost batch may have reached the provider.
                    sent_at=None,
                )
                .returning(m.id, m.phone, m.group_key, m.payload, m.attempts)
            )
            rows.extend(conn.execute(stmt).all())
    return Claim(token, [Claimed(r.id, r.phone, r.group_key, r.payload, r.attempts) for r in rows])


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


#: Rows per statement where each row is a statement of its own (the fallback): bounded only
#: so one transaction's executemany stays a reasonable size.
FALLBACK_CHUNK = 1000

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
# PostgreSQL: one array per column, so the statement text (and its prepared plan) is the same
# for every batch size.
_APPLY_PG = sa.text(
    f"UPDATE messages SET {_SET} FROM unnest("
    "CAST(:ids AS VARCHAR[]), CAST(:statuses AS VARCHAR[]), CAST(:provider_ids AS VARCHAR[]), "
    "CAST(:codes AS VARCHAR[]), CAST(:texts AS VARCHAR[]), CAST(:dues AS FLOAT8[]), "
    "CAST(:refunds AS INTEGER[])"
    f") AS v(id, status, provider_id, error_code, error_text, due_at, refund) WHERE {_HELD}"
)
# SQLite (UPDATE … FROM needs 3.33): the rows as one JSON array, unpacked by json_each.
_APPLY_SQLITE = sa.text(
    f"UPDATE messages SET {_SET} FROM (SELECT "
    "json_extract(value, '$[0]') AS id, json_extract(value, '$[1]') AS status, "
    "json_extract(value, '$[2]') AS provider_id, json_extract(value, '$[3]') AS error_code, "
    "json_extract(value, '$[4]') AS error_text, json_extract(value, '$[5]') AS due_at, "
    "json_extract(value, '$[6]') AS refund "
    f"FROM json_each(:rows)) AS v WHERE {_HELD}"
)


def _sqlite_update_from(conn: sa.Connection) -> bool:
    import sqlite3

    return conn.dialect.name == "sqlite" and sqlite3.sqlite_version_info >= (3, 33, 0)


def apply(engine: Engine, token: str, updates: Iterable[Update], now: float) -> int:
    """Write outcomes for messages still held under ``token``; returns rows changed.

    Compare-and-set per row: only a message still ``sending`` under this claim changes, so an
    outcome arriving after the sweep took the batch back is dropped. One statement per call
    (see ``_SET``); an id given twice keeps its first outcome, as the provider's first
    answer stands.
    """
    rows: dict[str, tuple[Any, ...]] = {}
    for u in updates:
        if u.id in rows:
            continue
        text = (u.error_text or None) and u.error_text[:1000]
        due = u.due_at if u.due_at is not None else now
        refund = 1 if u.refund_attempt else 0
        rows[u.id] = (u.id, u.status, u.provider_id, u.error_code, text, due, refund)
    if not rows:
        return 0
    values = list(rows.values())
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            cols = list(zip(*values, strict=True))
            params = dict(
                zip(
                    ("ids", "statuses", "provider_ids", "codes", "texts", "dues", "refunds"),
                    (list(c) for c in cols),
                    strict=True,
                )
            )
            result = conn.execute(_APPLY_PG, {**params, "token": token, "now": now})
            return int(result.rowcount or 0)
        if _sqlite_update_from(conn):
            result = conn.execute(
                _APPLY_SQLITE, {"rows": json.dumps(values), "token": token, "now": now}
            )
            return int(result.rowcount or 0)
        return _apply_per_row(conn, token, values, now)


def _apply_per_row(
    conn: sa.Connection, token: str, values: list[tuple[Any, ...]], now: float
) -> int:
    """Where UPDATE … FROM is missing (SQLite before 3.33): one statement per row."""
    stmt = (
        sa.update(messages_table)
        .where(m.id == sa.bindparam("b_id"), m.claim_token == token, m.status == SENDING)
        .values(
            status=sa.bindparam("b_status"),
            provider_id=sa.func.coalesce(sa.bindparam("b_provider_id"), m.provider_id),
            error_code=sa.bindparam("b_error_code"),
            error_text=sa.bindparam("b_error_text"),
            due_at=sa.bindparam("b_due_at"),
            attempts=m.attempts - sa.bindparam("b_refund"),
            sent_at=sa.func.coalesce(sa.bindparam("b_sent_at"), m.sent_at),
            lease_until=None,
            updated_at=now,
        )
    )
    keys = ("b_id", "b_status", "b_provider_id", "b_error_code", "b_error_text", "b_due_at")
    changed = 0
    for i in range(0, len(values), FALLBACK_CHUNK):
        params = [
            {**dict(zip(keys, v[:6], strict=True)), "b_refund": v[6]}
            | {"b_sent_at": now if v[1] == SENT else None}
            for v in values[i : i + FALLBACK_CHUNK]
        ]
        changed += int(conn.execute(stmt, params).rowcount or 0)
    return changed


def mark_departing(engine: Engine, token: str, ids: Sequence[str], now: float) -> int:
    """Record that these claimed messages are about to be sent; returns how many are still
    ours. Fewer than asked means the lease ran out and the sweep took some back: the caller
    must not send (someone else may be sending them)."""
    with engine.begin() as conn:
        result = conn.execute(
            sa.update(messages_table)
            .where(m.id.in_(ids), m.claim_token == token, m.status == SENDING)
            .values(sent_at=now)
        )
    return int(result.rowcount or 0)


def unmark_departing(engine: Engine, token: str, ids: Sequence[str]) -> None:
    """The request did not leave after all (the departure gate refused it)."""
    with engine.begin() as conn:
        conn.execute(
            sa.update(messages_table)
            .where(m.id.in_(ids), m.claim_token == token, m.status == SENDING)
            .values(sent_at=None)
        )


def reclaim_expired(engine: Engine, accounts: Iterable[AccountConfig], now: float) -> int:
    """Messages whose worker vanished mid-batch are driven on from the database.

    Not yet departed: back to ``queued`` (or ``failed`` once out of attempts: a batch that
    kills its worker every time must not cycle forever — the attempt was counted at claim).
    Departed (``sent_at`` set): the provider may have it, so like any ambiguous send it is
    reconciled (``unknown``), or resent / failed if the account's policy says so.
    """
    changed = 0
    lost = "worker lost the batch"
    with engine.begin() as conn:
        for account in accounts:
            expired = sa.and_(m.account == account.name, m.status == SENDING, m.lease_until < now)
            steps: list[tuple[Any, dict[str, Any]]] = [
                (
                    sa.and_(expired, m.attempts >= account.max_attempts),
                    {
                        "status": FAILED,
                        "error_code": "worker_lost",
                        "error_text": f"{lost} {account.max_attempts} times",
                    },
                ),
            ]
            departed = sa.and_(expired, m.sent_at.is_not(None))
            if account.on_ambiguous == "reconcile":
                steps.append(
                    (
                        departed,
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
                        departed,
                        {
                            "status": FAILED,
                            "error_code": "worker_lost",
                            "error_text": f"{lost} after sending; may have been sent",
                        },
                    )
                )
            steps.append((expired, {"status": QUEUED, "due_at": now}))
            for where, values in steps:
                result = conn.execute(
                    sa.update(messages_table)
                    .where(where)
                    .values(claim_token=None, lease_until=None, updated_at=now, **values)
                )
                changed += int(result.rowcount or 0)
    return changed


def has_due(engine: Engine, account: str, now: float) -> bool:
    with engine.connect() as conn:
        return (
            conn.execute(
                sa.select(m.id)
                .where(m.account == account, m.status.in_(CLAIMABLE), m.due_at <= now)
                .limit(1)
            ).first()
            is not None
        )


def payload_of(payload: str) -> dict[str, Any]:
    try:
        value = json.loads(payload)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


__all__ = [
    "FAILED",
    "QUEUED",
    "SENT",
    "UNKNOWN",
    "Claim",
    "Claimed",
    "Update",
    "apply",
    "claim",
    "has_due",
    "reclaim_expired",
]
