"""Settling ``unknown`` messages: ask the provider whether it got them.

A request that timed out after it was written, or whose answer was lost, may or may not have
been acted on. Resending blindly could deliver twice, so such messages wait as ``unknown``
until a status query says ``sent``/``failed`` (recorded as such) or "never received" (then,
and only then, resent). Where the channel has no status query, or the provider keeps not
knowing, the message stays ``unknown`` with the code ``unreconciled``: the one window that
cannot be closed, marked as such.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from teledispatch.channels.base import OutMessage, StatusQuery
from teledispatch.channels.registry import adapter_for
from teledispatch.config import AccountConfig
from teledispatch.db import messages as repo
from teledispatch.errors import DispatchError
from teledispatch.statuses import FAILED, SENT, UNRECONCILED
from teledispatch.worker.context import Context
from teledispatch.worker.dispatch.outcomes import retry

#: Between queries that did not tell.
REQUERY_AFTER_S = 30.0
#: Stop asking after this long: the provider's status query covers days, our patience less.
GIVE_UP_AFTER_S = 6 * 3600.0
BATCH = 50


@dataclass
class ReconcileReport:
    settled: int = 0
    resent: int = 0
    unreconciled: int = 0


def _set(ctx: Context, message_id: str, now: float, **values: object) -> int:
    """Compare-and-set on status: only a message still ``unknown`` is changed."""
    return repo.set_if_unknown(ctx.engine, message_id, now, **values)


def reconcile(ctx: Context, account: AccountConfig) -> ReconcileReport:
    report = ReconcileReport()
    now = time.time()
    adapter = adapter_for(account.channel)
    rows = repo.due_unknown(ctx.engine, account.name, now, BATCH)
    for row in rows:
        if not isinstance(adapter, StatusQuery) or now - row.updated_at > GIVE_UP_AFTER_S:
            why = (
                "no status query for this channel"
                if not isinstance(adapter, StatusQuery)
                else ("the provider could not tell in time")
            )
            report.unreconciled += _set(
                ctx,
                row.id,
                now,
                error_code=UNRECONCILED,
                error_text=f"may have been sent ({row.error_text}); {why}"[:1000],
            )
            continue
        message = OutMessage(row.id, row.phone, repo.payload_of(row.payload))
        request = adapter.status_query(account, message, row.updated_at, now)
        outcome = None
        if request is not None:
            try:
                resp = ctx.transport.send(request, account.timeout_s)
                outcome = adapter.parse_status(message, resp.status, resp.headers, resp.body)
            except DispatchError:
                outcome = None
        if outcome is None or outcome.status == "unknown":
            _set(ctx, row.id, row.updated_at, due_at=now + REQUERY_AFTER_S)
        elif outcome.status == "sent":
            report.settled += _set(
                ctx,
                row.id,
                now,
                status=SENT,
                provider_id=outcome.provider_id,
                sent_at=now,
                error_code=None,
                error_text=None,
            )
        elif outcome.status == "failed":
            report.settled += _set(
                ctx,
                row.id,
                now,
                status=FAILED,
                error_code=outcome.error_code,
                error_text=outcome.error_text,
            )
        else:
            u = retry(
                account,
                row.id,
                row.attempts,
                outcome.error_code or "not_received",
                outcome.error_text or "",
                now,
            )
            report.resent += _set(
                ctx,
                row.id,
                now,
                status=u.status,
                due_at=u.due_at or now,
                error_code=u.error_code,
                error_text=u.error_text,
            )
    return report
