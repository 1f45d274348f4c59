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


#: Ids per ``IN (...)`` list: well under every SQLite build's bound-parameter limit.
IN_CHUNK = 900


def apply(engine: Engine, token: str, updates: Iterable[Update], now: float) -> int:
    """Write outcomes for messages still held under ``token``; returns rows changed.

    Most outcomes of a request are alike but for the message id (all ``sent``, and NXCloud's
    provider id *is* our id), so alike outcomes are written by one ``UPDATE … WHERE id IN``
    each; only rows with a provider id of their own need a statement per row (executemany).
    """
    groups: dict[tuple[Any, ...], list[str]] = {}
    singles: list[dict[str, Any]] = []
    for u in updates:
        text = (u.error_text or None) and u.error_text[:1000]
        due = u.due_at if u.due_at is not None else now
        if u.provider_id is None or u.provider_id == u.id:
            key = (u.status, u.provider_id is not None, u.error_code, text, due, u.refund_attempt)
            groups.setdefault(key, []).append(u.id)
            continue
        singles.append(
            {
                "b_id": u.id,
                "b_status": u.status,
                "b_provider_id": u.provider_id,
                "b_error_code": u.error_code,
                "b_error_text": text,
                "b_due_at": due,
                "b_refund": 1 if u.refund_attempt else 0,
                "b_sent_at": now if u.status == SENT else None,
            }
        )
    held = sa.and_(m.claim_token == token, m.status == SENDING)
    changed = 0
    with engine.begin() as conn:
        for (status, own_id, code, text, due, refund), ids in groups.items():
            values: dict[str, Any] = {
                "status": status,
                "error_code": code,
                "error_text": text,
                "due_at": due,
                "lease_until": None,
                "updated_at": now,
            }
            if refund:
                values["attempts"] = m.attempts - 1
            if status == SENT:
                values["sent_at"] = now
            if own_id:
                values["provider_id"] = m.id
            for i in range(0, len(ids), IN_CHUNK):
                chunk = ids[i : i + IN_CHUNK]
                stmt = sa.update(messages_table).where(m.id.in_(chunk), held).values(**values)
                changed += int(conn.execute(stmt).rowcount or 0)
        if singles:
            stmt = (
                sa.update(messages_table)
                .where(m.id == sa.bindparam("b_id"), held)
                .values(
                    status=sa.bindparam("b_status"),
                    provider_id=sa.bindparam("b_provider_id"),
                    error_code=sa.bindparam("b_error_code"),
                    error_text=sa.bindparam("b_error_text"),
                    due_at=sa.bindparam("b_due_at"),
                    attempts=m.attempts - sa.bindparam("b_refund"),
                    sent_at=sa.func.coalesce(sa.bindparam("b_sent_at"), m.sent_at),
                    lease_until=None,
                    updated_at=now,
                )
            )
            changed += int(conn.execute(stmt, singles).rowcount or 0)
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
