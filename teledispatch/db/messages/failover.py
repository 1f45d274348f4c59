"""Moving a routed message to its route's next account: one transaction per call, each move
a compare-and-set on the message with its ``attempts`` row.

A move is only ever made of a message that provably never left: one still held by the claim
that was refused or met an open circuit before sending (``token``), or one waiting ``queued``
on an account whose circuit is open. The guard is the row's state, so a message a worker
claimed (or sent) a moment ago is not moved, and one moved is not sent by the old account.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from teledispatch.db import attempts
from teledispatch.db.messages._common import m
from teledispatch.db.tables import literal_status, messages_table
from teledispatch.statuses import QUEUED, SENDING


@dataclass(frozen=True, slots=True)
class Routed:
    """What choosing a routed message's next account needs."""

    id: str
    route: str
    phone: str
    payload: str


@dataclass(frozen=True, slots=True)
class Move:
    id: str
    to_account: str
    channel: str
    payload: str
    #: Why it left its account: ``paused`` or ``refused``, with the provider's code and text.
    outcome: str
    error_code: str | None
    error_text: str | None
    #: Its SMS measures for the new channel (None where the provider holds the text).
    encoding: str | None = None
    segments: int | None = None


_ROUTED_COLUMNS = (m.id, m.route, m.phone, m.payload)


def routed(engine: Engine, ids: Sequence[str]) -> list[Routed]:
    """The routed ones of ``ids`` (one query, only when a batch met a failure)."""
    if not ids:
        return []
    query = sa.select(*_ROUTED_COLUMNS).where(m.id.in_(list(ids)), m.route.is_not(None))
    with engine.connect() as conn:
        return [Routed(*row) for row in conn.execute(query)]


def waiting_routed(engine: Engine, account: str, limit: int) -> list[Routed]:
    """Routed messages waiting ``queued`` on ``account`` (whose circuit is open)."""
    query = (
        sa.select(*_ROUTED_COLUMNS)
        .where(m.account == account, m.status.in_(literal_status(QUEUED)), m.route.is_not(None))
        .order_by(m.priority, m.due_at)
        .limit(limit)
    )
    with engine.connect() as conn:
        return [Routed(*row) for row in conn.execute(query)]


def move(
    engine: Engine, from_account: str, moves: Sequence[Move], now: float, token: str | None = None
) -> list[str]:
    """Reassign each message still where it was (held by ``token``, else ``queued``) to its
    new account, due now and with no attempt spent there, writing its ``attempts`` row;
    returns the ids moved."""
    held = (
        sa.and_(m.status == SENDING, m.claim_token == token)
        if token is not None
        else m.status == QUEUED
    )
    moved: list[str] = []
    rows: list[attempts.AttemptRow] = []
    with engine.begin() as conn:
        for mv in moves:
            stmt = (
                sa.update(messages_table)
                .where(m.id == mv.id, m.account == from_account, held)
                .values(
                    account=mv.to_account,
                    channel=mv.channel,
                    payload=mv.payload,
                    group_key="",
                    status=QUEUED,
                    due_at=now,
                    attempts=0,
                    claim_token=None,
                    lease_until=None,
                    error_code=mv.error_code and mv.error_code[:64],
                    error_text=mv.error_text and mv.error_text[:1000],
                    encoding=mv.encoding,
                    segments=mv.segments,
                    updated_at=now,
                )
            )
            if conn.execute(stmt).rowcount:
                moved.append(mv.id)
                rows.append(
                    attempts.AttemptRow(
                        mv.id, from_account, now, mv.outcome, mv.error_code, mv.error_text
                    )
                )
        attempts.insert(conn, rows)
    return moved
