"""Every statement on messages and batches lives in this package, each one statement or one
short transaction. Callers import the package (``from teledispatch.db import messages``);
the modules are how it is organised, not an interface:

- ``claims``: :class:`Claimed`/:class:`Claim`, :func:`claim` (expired and opted-out rows
  written at claim),
  the departure compare-and-set (:func:`mark_departing`), :func:`has_due`;
- ``updates``: :class:`Update` and :func:`apply`, a batch's outcomes in one statement;
- ``reclaim``: :func:`reclaim_expired`, the sweep of batches whose lease ran out;
- ``reads``: lookups, counts, pages, payloads, the backlog for ``/metrics``,
  :func:`job_is_finished`;
- ``insert``: the producer's writes (:func:`insert_messages`, by COPY when fresh, and
  :func:`cancel_unclaimed`);
- ``reconcile``: ``unknown`` messages due for a status query, and their outcome;
- ``receipts``: :func:`settle` and receipt polling;
- ``expiry``: :func:`expire_unsent` and retention's :func:`delete_job_messages` and
  :func:`dispatch_at_work`;
- ``console``: what the operator console reads (counts of a page of jobs, failures by code);
- ``retry``: finished messages sent again as new rows (:func:`insert_retries`);
- ``outbox``: webhook events for the rows a transaction changed (:func:`record_changes`);
- ``parked``: :func:`claimed_rows`, a parked batch's rows read back at its slot;
- ``_common``: what the modules share.

Claims are compare-and-set: a claim moves due rows to ``sending`` under a fresh ``claim_token``
and a lease; every later write names that token, so a worker whose lease expired (and whose
messages were claimed again by someone else) cannot overwrite the newer outcome.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from teledispatch.lazy import exports
from teledispatch.statuses import FAILED, QUEUED, SENT, UNKNOWN

if TYPE_CHECKING:
    from teledispatch.db.messages._common import OPTED_OUT_CODE, RECONCILE_AFTER_S, log, m
    from teledispatch.db.messages.claims import (
        Claim,
        Claimed,
        claim,
        has_due,
        mark_departing,
        unmark_departing,
    )
    from teledispatch.db.messages.console import (
        FAILURE_STATUSES,
        failure_groups,
        has_active,
        status_counts_of,
        waiting_errors,
    )
    from teledispatch.db.messages.expiry import (
        EXPIRED_CODE,
        delete_job_messages,
        dispatch_at_work,
        expire_unsent,
    )
    from teledispatch.db.messages.insert import COPY_MIN_ROWS, cancel_unclaimed, insert_messages
    from teledispatch.db.messages.outbox import QUIET_STATUSES, record_changes
    from teledispatch.db.messages.parked import claimed_rows
    from teledispatch.db.messages.reads import (
        BACKLOG_STATUSES,
        Backlog,
        account_load,
        active_backlog,
        backlog,
        count_job_messages,
        count_reconciling,
        find_messages,
        job_is_finished,
        job_messages_page,
        last_due_at,
        next_due_at,
        payload_of,
        segment_counts,
        status_counts,
        waiting_count,
    )
    from teledispatch.db.messages.receipts import (
        due_for_receipt_poll,
        postpone_receipt_poll,
        settle,
    )
    from teledispatch.db.messages.reclaim import RECLAIM_CHUNK, reclaim_expired
    from teledispatch.db.messages.reconcile import due_unknown, set_if_unknown
    from teledispatch.db.messages.retry import (
        MAY_HAVE_BEEN_SENT,
        RETRYABLE_STATUSES,
        RetryPlan,
        insert_retries,
        retry_plan,
    )
    from teledispatch.db.messages.updates import PROVIDER_ID_WIDTH, Update, apply

#: The module of each export, imported on first use (PEP 562): ``teledispatch status`` reads
#: with ``reads`` alone, and must not pay for the claim, outcome and outbox modules (and what
#: they import) that only a worker or an enqueue runs.
_WHERE = {
    "OPTED_OUT_CODE": "_common",
    "RECONCILE_AFTER_S": "_common",
    "log": "_common",
    "m": "_common",
    "Claim": "claims",
    "Claimed": "claims",
    "claim": "claims",
    "has_due": "claims",
    "mark_departing": "claims",
    "unmark_departing": "claims",
    "FAILURE_STATUSES": "console",
    "failure_groups": "console",
    "has_active": "console",
    "status_counts_of": "console",
    "waiting_errors": "console",
    "EXPIRED_CODE": "expiry",
    "delete_job_messages": "expiry",
    "expire_unsent": "expiry",
    "dispatch_at_work": "expiry",
    "COPY_MIN_ROWS": "insert",
    "cancel_unclaimed": "insert",
    "insert_messages": "insert",
    "QUIET_STATUSES": "outbox",
    "record_changes": "outbox",
    "claimed_rows": "parked",
    "BACKLOG_STATUSES": "reads",
    "Backlog": "reads",
    "account_load": "reads",
    "active_backlog": "reads",
    "backlog": "reads",
    "count_job_messages": "reads",
    "count_reconciling": "reads",
    "find_messages": "reads",
    "job_is_finished": "reads",
    "job_messages_page": "reads",
    "last_due_at": "reads",
    "next_due_at": "reads",
    "payload_of": "reads",
    "segment_counts": "reads",
    "status_counts": "reads",
    "waiting_count": "reads",
    "due_for_receipt_poll": "receipts",
    "postpone_receipt_poll": "receipts",
    "settle": "receipts",
    "RECLAIM_CHUNK": "reclaim",
    "reclaim_expired": "reclaim",
    "due_unknown": "reconcile",
    "set_if_unknown": "reconcile",
    "MAY_HAVE_BEEN_SENT": "retry",
    "RETRYABLE_STATUSES": "retry",
    "RetryPlan": "retry",
    "insert_retries": "retry",
    "retry_plan": "retry",
    "PROVIDER_ID_WIDTH": "updates",
    "Update": "updates",
    "apply": "updates",
}


__getattr__ = exports(__name__, globals(), {k: f".{v}" for k, v in _WHERE.items()})


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


__all__ = [
    "BACKLOG_STATUSES",
    "COPY_MIN_ROWS",
    "EXPIRED_CODE",
    "FAILED",
    "FAILURE_STATUSES",
    "MAY_HAVE_BEEN_SENT",
    "OPTED_OUT_CODE",
    "PROVIDER_ID_WIDTH",
    "QUEUED",
    "QUIET_STATUSES",
    "RECLAIM_CHUNK",
    "RECONCILE_AFTER_S",
    "RETRYABLE_STATUSES",
    "SENT",
    "UNKNOWN",
    "Backlog",
    "Claim",
    "Claimed",
    "RetryPlan",
    "Update",
    "account_load",
    "active_backlog",
    "apply",
    "backlog",
    "cancel_unclaimed",
    "claim",
    "claimed_rows",
    "count_job_messages",
    "count_reconciling",
    "delete_job_messages",
    "dispatch_at_work",
    "due_for_receipt_poll",
    "due_unknown",
    "expire_unsent",
    "failure_groups",
    "find_messages",
    "has_active",
    "has_due",
    "insert_messages",
    "insert_retries",
    "job_is_finished",
    "job_messages_page",
    "last_due_at",
    "log",
    "m",
    "mark_departing",
    "next_due_at",
    "payload_of",
    "postpone_receipt_poll",
    "reclaim_expired",
    "record_changes",
    "retry_plan",
    "segment_counts",
    "set_if_unknown",
    "settle",
    "status_counts",
    "status_counts_of",
    "unmark_departing",
    "waiting_count",
    "waiting_errors",
]
