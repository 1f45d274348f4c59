"""Outcomes of claimed messages: :class:`Update` and :func:`apply`, one statement a batch."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from teledispatch.db.messages._common import log
from teledispatch.db.messages.outbox import EVENT_RETURNING, record_changes
from teledispatch.statuses import (
    DEFERRED,
    FAILED,
    QUEUED,
    SENT,
    UNKNOWN,
)


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
    #: Keep the row's place: ``due_at`` stays as it was and ``due_at`` given here becomes its
    #: ``hold_until`` (not claimed before), so a row handed back unsent is not put behind
    #: rows that came after it.
    keep_place: bool = False

    # Named constructors: one per kind of outcome, so no caller spells a row of Nones.

    @classmethod
    def sent(cls, id: str, provider_id: str | None) -> Update:
        """Accepted by the provider (``sent_at`` is the ``now`` given to :func:`apply`)."""
        return cls(id, SENT, provider_id)

    @classmethod
    def failed(cls, id: str, code: str | None = None, text: str | None = None) -> Update:
        return cls(id, FAILED, None, code, text)

    @classmethod
    def retry(cls, id: str, due_at: float, code: str | None, text: str | None) -> Update:
        """Queued again at ``due_at``; the attempt counts."""
        return cls(id, QUEUED, None, code, text, due_at)

    @classmethod
    def requeue(
        cls, id: str, due_at: float, code: str | None = None, text: str | None = None
    ) -> Update:
        """Queued again, not claimed before ``due_at``, with the attempt given back and its
        place kept: it never reached the provider through any fault of the recipient's (no
        rate slot free, throttled, the provider paused)."""
        return cls(id, QUEUED, None, code, text, due_at, True, True)

    @classmethod
    def deferred(cls, id: str, due_at: float, code: str | None, text: str | None) -> Update:
        """Held by a window until ``due_at``; the attempt is given back."""
        return cls(id, DEFERRED, None, code, text, due_at, True)

    @classmethod
    def unknown(cls, id: str, due_at: float, code: str | None, text: str | None) -> Update:
        """May have been sent: asked about (reconciled) from ``due_at``."""
        return cls(id, UNKNOWN, None, code, text, due_at)


# Outcomes of one batch, written by one UPDATE … FROM a relation of (id, new values): one
# round trip and one plan however many rows, where a statement per row cost ~90 µs per
# message on PostgreSQL (every ``sent`` carries its own provider id, so they could not be
# grouped). ``COALESCE(v.provider_id, …)`` keeps an earlier provider id when the outcome has
# none, and ``sent_at`` is set only by a ``sent`` outcome, as the per-row statements did.
_SET = """
    status = v.status,
    provider_id = COALESCE(v.provider_id, messages.provider_id),
    error_code = v.error_code,
    error_text = v.error_text,
    due_at = CASE WHEN v.hold = 1 THEN messages.due_at ELSE v.due_at END,
    hold_until = CASE WHEN v.hold = 1 THEN v.due_at ELSE NULL END,
    attempts = messages.attempts - v.refund,
    sent_at = CASE WHEN v.status = 'sent' THEN :now ELSE messages.sent_at END,
    lease_until = NULL,
    updated_at = :now
"""
_HELD = "messages.id = v.id AND messages.claim_token = :token AND messages.status = 'sending'"
# Both databases: the rows as ONE JSON array of positional arrays, unpacked by the server.
# PostgreSQL: ``jsonb_array_elements``, where one array parameter per column (``unnest``) made
# psycopg quote every element in Python (~4.5 µs of client CPU per message against ~2.5 this
# way, measured over 200-row batches); jsonb rather than json because the server parses the
# text once instead of once per ``->>`` (~2 µs/message less wall). ``->>`` gives SQL NULL
# for a JSON null, text as it was (jsonb keeps strings verbatim), and a number's digits as
# written, so ``repr``'s shortest round-trip float comes back bit for bit. The statement text
# (and its prepared plan) is the same for every batch size.
_APPLY_PG = sa.text(
    f"UPDATE messages SET {_SET} FROM (SELECT "
    "e->>0 AS id, e->>1 AS status, e->>2 AS provider_id, e->>3 AS error_code, "
    "e->>4 AS error_text, CAST(e->>5 AS FLOAT8) AS due_at, CAST(e->>6 AS INTEGER) AS refund, "
    "CAST(e->>7 AS INTEGER) AS hold "
    f"FROM jsonb_array_elements(CAST(:rows AS JSONB)) AS e) AS v WHERE {_HELD}"
    # The event columns of the rows changed: what the outbox writes (record_changes).
    f" {EVENT_RETURNING}"
)
# SQLite (UPDATE … FROM needs 3.33): the same array, unpacked by json_each, each row then
# found by its id. The unary ``+`` keeps the claim token's index out of SQLite's plan: with
# it, SQLite walked the claim's rows and scanned the whole array for each: a write cost the
# square of its batch.
_HELD_SQLITE = _HELD.replace("messages.claim_token", "+messages.claim_token")
_APPLY_SQLITE = sa.text(
    f"UPDATE messages SET {_SET} FROM (SELECT "
    "json_extract(value, '$[0]') AS id, json_extract(value, '$[1]') AS status, "
    "json_extract(value, '$[2]') AS provider_id, json_extract(value, '$[3]') AS error_code, "
    "json_extract(value, '$[4]') AS error_text, json_extract(value, '$[5]') AS due_at, "
    "json_extract(value, '$[6]') AS refund, json_extract(value, '$[7]') AS hold "
    f"FROM json_each(:rows)) AS v WHERE {_HELD_SQLITE}"
    f" {EVENT_RETURNING}"
)


def _storable(value: str | None, width: int) -> str | None:
    """Provider text as its column can hold it: at most ``width`` characters, no NUL and no
    lone surrogate (both arrive in valid JSON as ``\u0000`` / ``\ud800``; PostgreSQL
    refuses them and SQLite stores bytes it cannot read back), ``""`` as NULL.

    Without this, one odd answer made a whole batch's outcomes unwritable: the batch stayed
    claimed until the sweep turned it into ``unknown``."""
    if not value:
        return None
    if not value.isascii():
        value = value.encode("utf-8", "replace").decode("utf-8")
    if "\x00" in value:
        value = value.replace("\x00", "")
    return value[:width] or None


#: The ``provider_id`` column's width (migration 0003): every adapter bounds its ids within it.
PROVIDER_ID_WIDTH = 500


def _provider_id(u: Update) -> str | None:
    """The provider's id as given, or NULL if no column could hold it exactly.

    Unlike error text, an id is never altered: a shortened or repaired one would match no
    receipt or status query, and look valid. Missing is the honest outcome (logged)."""
    value = u.provider_id
    if not value:
        return None
    if _storable(value, PROVIDER_ID_WIDTH) != value:  # too long, a NUL or a lone surrogate
        log.warning("message %s: provider id of %d characters not storable", u.id, len(value))
        return None
    return value


# The batch row of a request whose messages all have their outcome, deleted in the same
# transaction. ``status = 'sending'`` verbatim: the partial ``ix_messages_sending`` answers.
_FINISH = sa.text(
    "DELETE FROM batches WHERE claim_token = :token AND group_key = :group AND NOT EXISTS ("
    "SELECT 1 FROM messages WHERE messages.claim_token = :token "
    "AND messages.status = 'sending' AND messages.group_key = :group)"
)


_LOCK_BATCH = sa.text(
    "SELECT 1 FROM batches WHERE claim_token = :token AND group_key = :group FOR UPDATE"
)


def apply(
    engine: Engine,
    token: str,
    updates: Iterable[Update],
    now: float,
    *,
    finish: str | None = None,
) -> int:
    """Write outcomes for messages still held under ``token``; returns rows changed.

    Compare-and-set per row: only a message still ``sending`` under this claim changes, so an
    outcome arriving after the sweep took the batch back is dropped. One statement per call
    (see ``_SET``); an id given twice keeps its first outcome, as the provider's first
    answer stands.

    ``finish``: the group key of a request whose outcomes these are; its ``batches`` row is
    deleted too, unless a message of it is still ``sending``. Left to the sweep, finished
    batch rows piled up until their leases expired, and deleting them made every sweep of a
    1,000,000-message run a transaction of seconds (~100 s of the server's CPU in all).
    """
    rows: dict[str, tuple[Any, ...]] = {}
    for u in updates:
        if u.id in rows:
            continue
        pid = _provider_id(u)
        code = _storable(u.error_code, 64)
        text = _storable(u.error_text, 1000)
        due = float(u.due_at if u.due_at is not None else now)  # a REAL, even if given an int
        refund = 1 if u.refund_attempt else 0
        hold = 1 if u.keep_place else 0
        rows[u.id] = (u.id, u.status, pid, code, text, due, refund, hold)
    if not rows and finish is None:
        return 0
    # Due times are finite (now plus bounded delays), so the JSON is standard (no NaN).
    params = {"rows": json.dumps(list(rows.values())), "token": token, "now": now}
    changed = 0
    with engine.begin() as conn:
        if finish is not None and conn.dialect.name == "postgresql":
            # The batch row first, as the sweep locks it (its DELETE) before the messages:
            # locking the messages first and the row second deadlocked with a sweep taking
            # the same expired batch back. SQLite serialises writers and needs no order.
            conn.execute(_LOCK_BATCH, {"token": token, "group": finish})
        if rows:
            # SQLite: UPDATE … FROM needs 3.33; the claim's RETURNING already needs 3.35.
            stmt = _APPLY_PG if conn.dialect.name == "postgresql" else _APPLY_SQLITE
            done = conn.execute(stmt, params).all()
            changed = len(done)
            record_changes(conn, done, now)
        if finish is not None:
            conn.execute(_FINISH, {"token": token, "group": finish})
    return changed
