"""Failover: a routed message moves to its route's next account when its own account's
circuit opens, or its provider refuses it with a code worth another provider.

Only messages that provably never left move: ones still held by a claim whose request was
refused or never sent, and ones waiting ``queued`` on a paused account. A request that may
have been acted on goes to reconciliation as always, so a message is never sent through two
accounts. The move is a compare-and-set in one transaction with the message's attempt row
(``teledispatch.db.messages.failover``); the new account is woken at once.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Iterable, Mapping

from teledispatch import circuits, wakeups
from teledispatch.channels.registry import failover_codes
from teledispatch.channels.sms_segments import measure
from teledispatch.config import AccountConfig
from teledispatch.db.messages import failover as moves
from teledispatch.errors import DispatchError
from teledispatch.routes import payload_for, text_of
from teledispatch.worker.context import Context

log = logging.getLogger("teledispatch.failover")

#: Waiting messages moved off a paused account per call (one transaction each).
DRAIN_CHUNK = 500

PAUSED, REFUSED = "paused", "refused"


def worth_another(account: AccountConfig, code: str | None) -> bool:
    """Whether a refusal with ``code`` says only that this account cannot carry the message."""
    return code is not None and code in failover_codes(account.channel)


class _Paused:
    """Circuit states read once per call."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.seen: dict[str, bool] = {}

    def __call__(self, account: str) -> bool:
        if account not in self.seen:
            self.seen[account] = circuits.view(self.ctx.redis, account).paused
        return self.seen[account]


def _next_account(
    ctx: Context, row: moves.Routed, current: str, outcome: str, paused: _Paused
) -> str | None:
    """The first later member whose circuit is closed; for a refusal, else the next one
    anyway (it waits there: this account will not take it)."""
    route = ctx.settings.routes.get(row.route)
    if route is None:
        return None
    accounts = route.accounts_for(row.phone)
    if current not in accounts:
        return None
    later = [a for a in accounts[accounts.index(current) + 1 :] if a in ctx.settings.accounts]
    for account in later:
        if not paused(account):
            return account
    return later[0] if later and outcome == REFUSED else None


def _move_for(
    ctx: Context, row: moves.Routed, to: str, outcome: str, code: str | None, text: str | None
) -> moves.Move:
    channel = ctx.settings.accounts[to].channel
    try:
        fields = json.loads(row.payload)
    except ValueError:
        fields = {}
    message_text = text_of(fields if isinstance(fields, dict) else {})
    payload = payload_for(ctx.settings.routes[row.route], to, channel, row.phone, message_text)
    measured = measure(message_text) if "content" in payload else None
    return moves.Move(
        row.id,
        to,
        channel,
        json.dumps(payload, ensure_ascii=False, separators=(",", ":"), sort_keys=True),
        outcome,
        code,
        text,
        measured.encoding if measured else None,
        measured.parts if measured else None,
    )


def _move(
    ctx: Context,
    account: AccountConfig,
    rows: Iterable[moves.Routed],
    why: Mapping[str, tuple[str, str | None, str | None]],
    token: str | None,
) -> set[str]:
    """Move ``rows`` (``why``: id → outcome, code, text); returns the ids moved."""
    paused = _Paused(ctx)
    planned = []
    for row in rows:
        outcome, code, text = why[row.id]
        to = _next_account(ctx, row, account.name, outcome, paused)
        if to is not None:
            planned.append(_move_for(ctx, row, to, outcome, code, text))
    if not planned:
        return set()
    moved = set(moves.move(ctx.engine, account.name, planned, ctx.clock(), token))
    targets = Counter((mv.to_account, mv.outcome) for mv in planned if mv.id in moved)
    for (to, outcome), n in targets.items():
        log.info("moved %d routed messages from %s to %s (%s)", n, account.name, to, outcome)
        wakeups.kick(ctx.redis, ctx.publish, ctx.settings.accounts[to], 0)
    return moved


def reroute_claimed(
    ctx: Context,
    account: AccountConfig,
    token: str,
    why: Mapping[str, tuple[str, str | None, str | None]],
) -> set[str]:
    """Claimed messages that never left (``why``: id → outcome, code, text) move on, if
    routed; the rest are untouched. Returns the ids moved (their outcomes are then not
    written: the claim no longer holds them)."""
    if not why or not ctx.settings.routes:
        return set()
    try:
        return _move(ctx, account, moves.routed(ctx.engine, list(why)), why, token)
    except Exception:
        # Failover is a bonus on top of the outcome: without it the messages take their
        # account's outcome (queued behind the circuit, or failed), as for an account job.
        log.exception("could not move routed messages off account %s", account.name)
        return set()


def reroute_error(
    ctx: Context, account: AccountConfig, token: str, ids: list[str], exc: DispatchError
) -> set[str]:
    """A request-level refusal worth another provider: every routed message of it moves."""
    if exc.may_have_been_sent or not worth_another(account, exc.code):
        return set()
    why = dict.fromkeys(ids, (REFUSED, exc.code, exc.message))
    return reroute_claimed(ctx, account, token, why)


def drain(ctx: Context, account: AccountConfig) -> int:
    """Routed messages waiting on ``account`` while its circuit is open move to the next
    account whose circuit is closed; returns how many (:data:`DRAIN_CHUNK`: call again)."""
    if not any(account.name in r.all_accounts for r in ctx.settings.routes.values()):
        return 0  # in no route: nothing of it can move
    try:
        rows = moves.waiting_routed(ctx.engine, account.name, DRAIN_CHUNK)
        if not rows:
            return 0
        reason = circuits.view(ctx.redis, account.name).reason or "provider unwell"
        why = {row.id: (PAUSED, "circuit_open", reason) for row in rows}
        return len(_move(ctx, account, rows, why, None))
    except Exception:  # they wait for the account's circuit instead; the next wake retries
        log.exception("could not move waiting routed messages off account %s", account.name)
        return 0
