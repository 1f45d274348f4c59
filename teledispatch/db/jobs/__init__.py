"""Every statement on the ``jobs`` table: ``statements`` (SQLAlchemy) and ``plain`` (SQL text
for the read path without SQLAlchemy, ``db/plain.py``). Callers import the package
(``from teledispatch.db import jobs as jobs_db``); ``statements`` loads on first use (PEP 562),
so that ``plain`` comes without SQLAlchemy.

Each function takes the connection of a transaction its caller owns: a job's row is written
in the same transaction as its first recipients (one commit for a one-part job), and a
cancel marks the job in the transaction that cancels its messages.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from teledispatch.lazy import exports

if TYPE_CHECKING:
    from teledispatch.db.jobs.statements import (
        JobFilter,
        add_to_total,
        by_idempotency_key,
        callbacks,
        claim_done,
        count_existing,
        created_before,
        delete_job,
        get_job,
        insert_jobs,
        j,
        list_jobs,
        lock_total,
        mark_cancelled,
        open_with_callback,
        quiet_hours_of,
        signer_of,
        storing_header,
        weights,
    )


__all__ = [
    "JobFilter",
    "add_to_total",
    "by_idempotency_key",
    "callbacks",
    "claim_done",
    "count_existing",
    "created_before",
    "delete_job",
    "get_job",
    "insert_jobs",
    "j",
    "list_jobs",
    "lock_total",
    "mark_cancelled",
    "open_with_callback",
    "quiet_hours_of",
    "signer_of",
    "storing_header",
    "weights",
]

# Every name but ``plain``'s from ``statements``, loaded on first use (SQLAlchemy).
__getattr__ = exports(__name__, globals(), dict.fromkeys(__all__, ".statements"))
