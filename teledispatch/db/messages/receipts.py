"""Delivery receipts: settling a message, and which ones to poll for theirs."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from teledispatch.channels.base import Receipt
from teledispatch.db.messages.outbox import record_changes
from teledispatch.db.tables import literal_status, messages_table
from teledispatch.statuses import SETTLEABLE


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
