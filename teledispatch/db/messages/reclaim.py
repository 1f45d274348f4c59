"""The sweep that drives on the messages of batches whose lease ran out."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from teledispatch.config import AccountConfig
from teledispatch.db.messages._common import RECONCILE_AFTER_S, m
from teledispatch.db.messages.outbox import record_changes
from teledispatch.db.tables import batches_table, literal_status, messages_table
from teledispatch.statuses import (
    FAILED,
    QUEUED,
    SENDING,
    UNKNOWN,
)

#: Batch keys per ``(claim_token, group_key) IN (…)`` list in the sweep.
RECLAIM_CHUNK = 300


def reclaim_expired(engine: Engine, accounts: Iterable[AccountConfig], now: float) -> int:
    """Messages whose worker vanished mid-batch are driven on from the database.

    Each expired ``batches`` row is deleted (which is what makes a later departure attempt
    fail), and its messages still ``sending`` under that claim move on:

    Not departed: back to ``queued`` (or ``failed`` once out of attempts: a batch that kills
    its worker every time must not cycle forever — the attempt was counted at claim).
    Departed: the provider may have it, so like any ambiguous send it is reconciled
    (``unknown``, on the last attempt too), or resent / failed if the account's policy says
    so (a resend needs an attempt left).

    Claims made by the previous release (lease and departure on each message, no batch row)
    are reclaimed the old way, from ``messages.lease_until`` and ``sent_at``.
    """
    b = batches_table.c
    changed = 0
    with engine.begin() as conn:
        for account in accounts:
            lost = conn.execute(
                sa.delete(batches_table)
                .where(b.account == account.name, b.lease_until < now)
                .returning(b.claim_token, b.group_key, b.departed_at)
            ).all()
            departed = [(r.claim_token, r.group_key) for r in lost if r.departed_at is not None]
            stayed = [(r.claim_token, r.group_key) for r in lost if r.departed_at is None]
            (sending,) = literal_status(SENDING)
            held = sa.and_(m.account == account.name, m.status == sending)
            # A claim made by the previous release before the upgrade marks its departure on
            # the messages (``sent_at``), not on the batch row the migration gave it: honour
            # that too, or such a batch leaving after the upgrade would be requeued and sent
            # twice. New claims clear ``sent_at``, so for them this is False.
            stayed_departed = m.sent_at.is_not(None)
            for keys, was_departed in ((departed, True), (stayed, stayed_departed)):
                for i in range(0, len(keys), RECLAIM_CHUNK):
                    chunk = keys[i : i + RECLAIM_CHUNK]
                    where = sa.and_(
                        held,
                        m.claim_token.in_({t for t, _ in chunk}),  # ix_messages_sending
                        sa.tuple_(m.claim_token, m.group_key).in_(chunk),
                    )
                    changed += _reclaim(conn, account, where, was_departed, now)
            legacy = sa.and_(held, m.lease_until.is_not(None), m.lease_until < now)
            changed += _reclaim(conn, account, legacy, m.sent_at.is_not(None), now)
    return changed


def _reclaim(
    conn: sa.Connection, account: AccountConfig, expired: Any, departed: Any, now: float
) -> int:
    """Move the lost messages ``expired`` on; ``departed`` says whether they may have been
    sent (True/False for a whole batch, or a per-row condition)."""
    lost = "worker lost the batch"
    # Departed first: a request that may have reached the provider is reconciled (or failed as
    # "may have been sent") even when it was the last attempt; "failed: worker lost" would
    # claim it was not sent, which nobody knows.
    steps: list[tuple[Any, dict[str, Any]]] = []
    if departed is not False:
        gone = expired if departed is True else sa.and_(expired, departed)
        if account.on_ambiguous == "reconcile":
            steps.append(
                (
                    gone,
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
                    gone,
                    {
                        "status": FAILED,
                        "error_code": "worker_lost",
                        "error_text": f"{lost} after sending; may have been sent",
                    },
                )
            )
    steps.append(
        (
            sa.and_(expired, m.attempts >= account.max_attempts),
            {
                "status": FAILED,
                "error_code": "worker_lost",
                "error_text": f"{lost} {account.max_attempts} times",
            },
        )
    )
    # Due again at once, with its place in its job kept: its ``due_at`` (at or before the
    # claim) is left as it was, so it is not put behind rows that came after it.
    steps.append((expired, {"status": QUEUED, "hold_until": None}))
    changed = 0
    for where, values in steps:
        done = conn.execute(
            sa.update(messages_table)
            .where(where)
            .values(claim_token=None, lease_until=None, updated_at=now, **values)
            .returning(m.id, m.job_id)
        ).all()
        changed += len(done)
        record_changes(conn, done, now)
    return changed
