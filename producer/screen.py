"""Storing a part of a job with its opted-out recipients suppressed.

Every way a job's rows reach the database (one part with its header, a big job's parts, the
group-committing :class:`~teledispatch.producer.Producer`) goes through :func:`store`: one
indexed lookup of the part's numbers in the suppression lists per account (a set lookup on
``(account, phone)``, however long the lists), the rows of opted-out recipients written
``suppressed`` (final, counted, shown by lookup; not a validation problem), and their webhook
events in the same transaction.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from teledispatch.db import messages as messages_db
from teledispatch.db import optouts as optouts_db
from teledispatch.producer._spool import with_error_columns
from teledispatch.statuses import DEFERRED, QUEUED, SUPPRESSED

#: ``error_code`` of a suppressed message (the claim writes the same).
OPTED_OUT_CODE = messages_db.OPTED_OUT_CODE
_OPTED_OUT_TEXT = "the recipient opted out"
_SCREENED = (QUEUED, DEFERRED)


def suppress(conn: sa.Connection, records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mark the rows whose recipient is opted out ``suppressed``; returns them."""
    by_account: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        if record["status"] in _SCREENED:
            by_account.setdefault(record["account"], []).append(record)
    hit: list[dict[str, Any]] = []
    for account, rows in by_account.items():
        found = optouts_db.suppressed_among(conn, account, list({r["phone"] for r in rows}))
        if not found:
            continue
        for record in rows:
            if record["phone"] in found:
                record["status"] = SUPPRESSED
                record["error_code"] = OPTED_OUT_CODE
                record["error_text"] = _OPTED_OUT_TEXT
                hit.append(record)
    if hit:
        with_error_columns(list(records))
    return hit


def store(conn: sa.Connection, records: list[dict[str, Any]], *, fresh: bool = False) -> None:
    """Insert a part (see :func:`teledispatch.db.messages.insert_messages`), opted-out
    recipients ``suppressed``, with their webhook events."""
    hit = suppress(conn, records)
    messages_db.insert_messages(conn, records, fresh=fresh)
    if hit:
        messages_db.record_changes(conn, [(r["id"], r["job_id"]) for r in hit], time.time())
