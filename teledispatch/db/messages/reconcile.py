"""Reconciliation: ``unknown`` messages due for a status query, and their outcome."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from teledispatch.db.messages._common import m
from teledispatch.db.messages.outbox import record_changes
from teledispatch.db.tables import AnyRow, literal_status, messages_table
from teledispatch.statuses import (
    UNKNOWN,
    UNRECONCILED,
)


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
