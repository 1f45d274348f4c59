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
from sqlalchemy.engine import Connection, Engine

from producer.config import AccountConfig
from producer.store import (
    DEFERRED,
    FAILED,
    QUEUED,
    SENDING,
    SENT,
    UNKNOWN,
    is_postgres,
    jobs_table,
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
    token = uuid.uuid4().hex
    due = (
        sa.select(m.id)
        .where(m.account == account, m.status.in_(CLAIMABLE), m.due_at <= now)
        .order_by(m.due_at)
        .limit(limit)
    )
    if is_postgres(engine):
        # SKIP LOCKED: concurrent claimers take disjoint rows instead of queueing on each other.
        due = due.with_for_update(skip_locked=True)
    stmt = (
        sa.update(messages_table)
        .where(m.id.in_(due.scalar_subquery()), m.status.in_(CLAIMABLE))
        .values(
            status=SENDING,
            claim_token=token,
            lease_until=now + lease_s,
            attempts=m.attempts + 1,
            updated_at=now,
            # Cleared on claim, set just before the request leaves: the sweep's only evidence
            # of whether a lost batch may have reached the provider.
            sent_at=None,
        )
        .returning(m.id, m.phone, m.group_key, m.payload, m.attempts)
    )
    with engine.begin() as conn:
        rows = conn.execute(stmt).all()
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


def apply(engine: Engine, token: str, updates: Iterable[Update], now: float) -> int:
    """Write outcomes for messages still held under ``token``; returns rows changed."""
    params = []
    for u in updates:
        params.append(
            {
                "b_id": u.id,
                "b_token": token,
                "b_status": u.status,
                "b_provider_id": u.provider_id,
                "b_error_code": u.error_code,
                "b_error_text": (u.error_text or None) and u.error_text[:1000],
                "b_due_at": u.due_at if u.due_at is not None else now,
                "b_refund": 1 if u.refund_attempt else 0,
                "b_sent_at": now if u.status == SENT else None,
                "b_now": now,
            }
        )
    if not params:
        return 0
    stmt = (
        sa.update(messages_table)
        .where(
            m.id == sa.bindparam("b_id"),
            m.claim_token == sa.bindparam("b_token"),
            m.status == SENDING,
        )
        .values(
            status=sa.bindparam("b_status"),
            provider_id=sa.func.coalesce(sa.bindparam("b_provider_id"), m.provider_id),
            error_code=sa.bindparam("b_error_code"),
            error_text=sa.bindparam("b_error_text"),
            due_at=sa.bindparam("b_due_at"),
            attempts=m.attempts - sa.bindparam("b_refund"),
            sent_at=sa.func.coalesce(sa.bindparam("b_sent_at"), m.sent_at),
            lease_until=None,
            updated_at=sa.bindparam("b_now"),
        )
    )
    with engine.begin() as conn:
        result = conn.execute(stmt, params)
    return int(result.rowcount or 0)


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


def job_header(conn: Connection, job_id: str) -> Any:
    return conn.execute(sa.select(jobs_table).where(jobs_table.c.id == job_id)).first()


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
