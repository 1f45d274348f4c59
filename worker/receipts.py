"""Polling USpeedo delivery receipts (``USMSSendReceipt``): USpeedo documents no DR webhook.

Run by its own beat task (``maintenance.receipts``), not inside the sweep: a slow receipt
endpoint must never delay reclaiming leases or waking dispatchers.

Which messages: ``sent`` (or ``unknown`` with a SessionNo) on a USpeedo account, sent at
least :data:`POLL_DELAY_S` ago (the provider advises polling 5–10 min after sending), whose
next poll is due. ``due_at`` is otherwise unused once a message has left, so it doubles as
"ask again at": a receipt still ``Unknow`` pushes it :data:`REPOLL_S` further. After
:data:`GIVE_UP_S` a message is left as ``sent`` — a final state, just without a receipt.

Bounded: at most :data:`MAX_PER_RUN` messages and ``MAX_PER_RUN / 100`` requests per run; a
backlog drains over successive runs, oldest due first.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from teledispatch.channels.uspeedo.adapter import (
    MAX_RECEIPT_IDS,
    build_receipt_query,
    parse_receipts,
    provider_phone,
)
from teledispatch.config import AccountConfig
from teledispatch.db.tables import literal_status, messages_table
from teledispatch.errors import DispatchError
from teledispatch.receipts import settle, uspeedo_receipt
from teledispatch.statuses import SETTLEABLE
from teledispatch.worker.context import Context

log = logging.getLogger("teledispatch.receipts")
m = messages_table.c


def _env_float(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name, default))
    except ValueError:
        return default


#: First poll this long after the send (``TELEDISPATCH_RECEIPT_POLL_DELAY_S``).
POLL_DELAY_S = _env_float("TELEDISPATCH_RECEIPT_POLL_DELAY_S", 300.0)
#: Between polls of a message whose receipt is still ``Unknow``.
REPOLL_S = _env_float("TELEDISPATCH_RECEIPT_REPOLL_S", 60.0)
#: Stop asking: carriers report within hours or never.
GIVE_UP_S = _env_float("TELEDISPATCH_RECEIPT_GIVE_UP_S", 72 * 3600.0)
MAX_PER_RUN = 2000


@dataclass
class PollReport:
    asked: int = 0
    requests: int = 0
    settled: int = 0
    pending: int = 0


def _sessions(provider_id: str) -> list[str]:
    # A message keeps all SessionNos, comma-joined, when their owners could not be told apart.
    return [s for s in provider_id.split(",") if s]


def _chunks(ids: Sequence[str]) -> list[list[str]]:
    return [list(ids[i : i + MAX_RECEIPT_IDS]) for i in range(0, len(ids), MAX_RECEIPT_IDS)]


def poll_account(
    ctx: Context,
    account: AccountConfig,
    now: float | None = None,
    *,
    delay_s: float | None = None,
    limit: int = MAX_PER_RUN,
) -> PollReport:
    now = time.time() if now is None else now
    delay_s = POLL_DELAY_S if delay_s is None else delay_s
    report = PollReport()
    sent_at = sa.func.coalesce(m.sent_at, m.updated_at)
    with ctx.engine.connect() as conn:
        rows = conn.execute(
            sa.select(m.id, m.phone, m.provider_id)
            .where(
                m.account == account.name,
                # Literals, so the partial ix_messages_receipt_poll index matches.
                m.channel == sa.literal_column(repr(account.channel)),
                m.status.in_(literal_status(*SETTLEABLE)),
                m.provider_id.is_not(None),
                m.due_at <= now,
                sent_at <= now - delay_s,
                sent_at > now - GIVE_UP_S,
            )
            .order_by(m.due_at)
            .limit(limit)
        ).all()
    if not rows:
        return report
    report.asked = len(rows)
    session_ids = list(dict.fromkeys(s for r in rows for s in _sessions(str(r.provider_id))))
    receipts: dict[tuple[str, str], dict[str, Any]] = {}
    for chunk in _chunks(session_ids):
        report.requests += 1
        try:
            resp = ctx.transport.send(build_receipt_query(account, chunk), account.timeout_s)
            receipts.update(parse_receipts(resp.status, resp.body))
        except DispatchError as exc:
            # Ask again next time; the code is the provider's, never a credential.
            log.warning("USpeedo receipt query for %s failed: %s", account.name, exc.code)
    later: list[str] = []
    for row in rows:
        sessions = _sessions(str(row.provider_id))
        phone = provider_phone(str(row.phone))
        item = next((receipts[(s, phone)] for s in sessions if (s, phone) in receipts), None)
        receipt = uspeedo_receipt(item) if item is not None else None
        if receipt is not None and settle(
            ctx.engine, account.name, receipt, message_id=str(row.id), now=now
        ):
            report.settled += 1
        elif receipt is None:
            later.append(str(row.id))
    report.pending = len(later)
    if later:
        with ctx.engine.begin() as conn:
            conn.execute(
                sa.update(messages_table)
                .where(m.id.in_(later), m.status.in_(SETTLEABLE))
                .values(due_at=now + REPOLL_S)
            )
    return report


def poll_receipts(ctx: Context, now: float | None = None) -> PollReport:
    """Every USpeedo account, one bounded pass each."""
    total = PollReport()
    for account in ctx.settings.accounts.values():
        if account.channel != "uspeedo.sms":
            continue
        r = poll_account(ctx, account, now)
        total.asked += r.asked
        total.requests += r.requests
        total.settled += r.settled
        total.pending += r.pending
    return total
