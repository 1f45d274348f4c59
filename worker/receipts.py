"""Polling delivery receipts for every channel whose registry row has a receipt poller
(``ReceiptPoller``, e.g. USpeedo ``USMSSendReceipt``: no DR webhook is documented).

Run by its own beat task (``maintenance.receipts``), not inside the sweep: a slow receipt
endpoint must never delay reclaiming leases or waking dispatchers.

Which messages: ``sent`` (or ``unknown`` with a provider id) on a polled account, sent at
least :data:`POLL_DELAY_S` ago (USpeedo advises polling 5–10 min after sending), whose next
poll is due. ``due_at`` is otherwise unused once a message has left, so it doubles as "ask
again at": a receipt not yet final pushes it :data:`REPOLL_S` further. After
:data:`GIVE_UP_S` a message is left as ``sent`` — a final state, just without a receipt.

Bounded: at most :data:`MAX_PER_RUN` messages and ``MAX_PER_RUN / max_keys`` requests per run;
a backlog drains over successive runs, oldest due first.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

from teledispatch.channels.base import Receipt, ReceiptPoller
from teledispatch.channels.registry import CHANNELS
from teledispatch.config import AccountConfig, worker_timings
from teledispatch.db.messages import due_for_receipt_poll, postpone_receipt_poll, settle
from teledispatch.errors import DispatchError
from teledispatch.worker.context import Context

log = logging.getLogger("teledispatch.receipts")


#: First poll this long after the send (``TELEDISPATCH_RECEIPT_POLL_DELAY_S``).
POLL_DELAY_S = worker_timings().receipt_poll_delay_s
#: Between polls of a message whose receipt is still ``Unknow``.
REPOLL_S = worker_timings().receipt_repoll_s
#: Stop asking: carriers report within hours or never.
GIVE_UP_S = worker_timings().receipt_give_up_s
MAX_PER_RUN = 2000


@dataclass
class PollReport:
    asked: int = 0
    requests: int = 0
    settled: int = 0
    pending: int = 0

    def add(self, other: PollReport) -> None:
        self.asked += other.asked
        self.requests += other.requests
        self.settled += other.settled
        self.pending += other.pending


def _chunks(ids: Sequence[str], size: int) -> list[list[str]]:
    return [list(ids[i : i + size]) for i in range(0, len(ids), size)]


def _ask(
    ctx: Context, account: AccountConfig, poller: ReceiptPoller, keys: list[str], report: PollReport
) -> dict[tuple[str, str], Receipt | None]:
    answers: dict[tuple[str, str], Receipt | None] = {}
    for chunk in _chunks(keys, poller.max_keys):
        report.requests += 1
        try:
            resp = ctx.transport.send(poller.build_poll(account, chunk), account.timeout_s)
            answers.update(poller.parse_poll(resp.status, resp.body))
        except DispatchError as exc:
            # Ask again next time; the code is the provider's, never a credential.
            log.warning("receipt query for %s failed: %s", account.name, exc.code)
    return answers


def poll_account(
    ctx: Context,
    account: AccountConfig,
    now: float | None = None,
    *,
    delay_s: float | None = None,
    limit: int = MAX_PER_RUN,
) -> PollReport:
    """One bounded pass over ``account``'s messages due for a receipt poll."""
    now = time.time() if now is None else now
    delay_s = POLL_DELAY_S if delay_s is None else delay_s
    report = PollReport()
    poller = CHANNELS[account.channel].poller
    if poller is None:
        return report
    rows = due_for_receipt_poll(
        ctx.engine,
        account.name,
        account.channel,
        sent_before=now - delay_s,
        sent_after=now - GIVE_UP_S,
        now=now,
        limit=limit,
    )
    if not rows:
        return report
    report.asked = len(rows)
    keys = list(dict.fromkeys(k for r in rows for k in poller.query_keys(str(r.provider_id))))
    answers = _ask(ctx, account, poller, keys, report)
    later: list[str] = []
    for row in rows:
        recipient = poller.recipient(str(row.phone))
        keys_of_row = poller.query_keys(str(row.provider_id))
        receipt = next(
            (answers[(k, recipient)] for k in keys_of_row if (k, recipient) in answers), None
        )
        if receipt is not None and settle(
            ctx.engine, account.name, receipt, message_id=str(row.id), now=now
        ):
            report.settled += 1
        elif receipt is None:
            later.append(str(row.id))
    report.pending = len(later)
    postpone_receipt_poll(ctx.engine, later, now + REPOLL_S)
    return report


def poll_receipts(ctx: Context, now: float | None = None) -> PollReport:
    """Every account on a channel with a receipt poller, one bounded pass each."""
    total = PollReport()
    for account in ctx.settings.accounts.values():
        spec = CHANNELS.get(account.channel)
        if spec is not None and spec.poller_path is not None:
            total.add(poll_account(ctx, account, now))
    return total
