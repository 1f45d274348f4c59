"""A message's status, and every change of status the system may make.

The values are stored in ``messages.status`` and shown by lookups, the API and dashboards:
extend, never rename. :data:`TRANSITIONS` is the one place that says which change is allowed
and who makes it; the hypothesis state machine (tests/unit/test_state_machine.py) checks
every change it observes against it.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType


class Status(StrEnum):
    """A ``str``: members compare equal to, and are stored as, the words below."""

    QUEUED = "queued"  # accepted, waiting to be due / claimed
    DEFERRED = "deferred"  # held back by a rate window; due again at due_at
    SENDING = "sending"  # claimed by a worker under a lease
    UNKNOWN = "unknown"  # request may have reached the provider; being reconciled
    SENT = "sent"  # the provider accepted it
    FAILED = "failed"  # terminal: the provider refused it, or attempts ran out
    CANCELLED = "cancelled"  # terminal: cancelled before it was claimed
    DELIVERED = "delivered"  # terminal: delivery receipt says delivered
    UNDELIVERED = "undelivered"  # terminal: delivery receipt says not delivered
    EXPIRED = "expired"  # terminal: its job's expiry passed before it was sent
    SUPPRESSED = "suppressed"  # terminal: the recipient opted out (account or global list)


# Module-level names, as callers have always spelled them.
QUEUED = Status.QUEUED
DEFERRED = Status.DEFERRED
SENDING = Status.SENDING
UNKNOWN = Status.UNKNOWN
SENT = Status.SENT
FAILED = Status.FAILED
CANCELLED = Status.CANCELLED
DELIVERED = Status.DELIVERED
UNDELIVERED = Status.UNDELIVERED
EXPIRED = Status.EXPIRED
SUPPRESSED = Status.SUPPRESSED

#: Every status, in the order above.
STATUSES: tuple[Status, ...] = tuple(Status)

#: A job is done when none of its messages is in one of these, and no ``unknown`` message is
#: still being reconciled (``unknown`` with :data:`UNRECONCILED` is final: nobody can tell).
ACTIVE_STATUSES: frozenset[Status] = frozenset({QUEUED, DEFERRED, SENDING})
#: Not a status: the ``error_code`` of an ``unknown`` message that reconciliation gave up on.
UNRECONCILED = "unreconciled"

# CLAIMABLE and SETTLEABLE are tuples, not sets: queries render them as SQL literals (for
# the partial indexes), and a set's order would change that text from process to process.
#: Statuses a claim may pick up once due.
CLAIMABLE: tuple[Status, ...] = (QUEUED, DEFERRED)
#: Statuses a delivery receipt may settle; everything else is not yet sent or already final.
SETTLEABLE: tuple[Status, ...] = (SENT, UNKNOWN)
#: Statuses nothing ever changes again.
TERMINAL: frozenset[Status] = frozenset(
    {FAILED, CANCELLED, DELIVERED, UNDELIVERED, EXPIRED, SUPPRESSED}
)
#: Where a delivery receipt takes a message.
RECEIPT_OUTCOMES: frozenset[Status] = frozenset({DELIVERED, UNDELIVERED})
#: What a new message row is written as: ``cancelled`` when its job was cancelled first,
#: ``suppressed`` when its recipient is opted out, ``deferred`` when it falls in quiet hours.
INITIAL: frozenset[Status] = frozenset({QUEUED, CANCELLED, SUPPRESSED, DEFERRED})

#: Every allowed change of status (staying put is always allowed and not listed). The
#: writers are compare-and-set statements on the old status, so nothing else can happen.
TRANSITIONS: Mapping[Status, frozenset[Status]] = MappingProxyType(
    {
        # claim (db.messages.claim); cancel (db.messages.cancel_unclaimed); sweep
        # (db.messages.expire_unsent: its expiry passed)
        QUEUED: frozenset({SENDING, CANCELLED, EXPIRED}),
        # claim; cancel; sweep (expiry)
        DEFERRED: frozenset({SENDING, CANCELLED, EXPIRED}),
        # dispatch (outcomes via db.messages.apply: sent / failed / unknown, requeued for a
        # retry or a refused departure, deferred by a rate window); sweep (reclaim_expired:
        # a lost batch goes back to queued, to unknown if it departed, or to failed); claim
        # (a row claimed past its expiry is expired in the claim's transaction, never sent;
        # one whose recipient opted out after enqueue is suppressed there too); dispatch
        # (a row claimed in its recipient's quiet hours is deferred to the window's opening)
        SENDING: frozenset({SENT, FAILED, UNKNOWN, QUEUED, DEFERRED, EXPIRED, SUPPRESSED}),
        # reconcile (the provider says sent / failed / never received: resent or failed);
        # receipt (a receipt proves an ambiguous send arrived)
        UNKNOWN: frozenset({SENT, FAILED, QUEUED, DELIVERED, UNDELIVERED}),
        # receipt
        SENT: RECEIPT_OUTCOMES,
        # terminal
        FAILED: frozenset(),
        CANCELLED: frozenset(),
        DELIVERED: frozenset(),
        UNDELIVERED: frozenset(),
        EXPIRED: frozenset(),
        SUPPRESSED: frozenset(),
    }
)


def allowed(old: str, new: str) -> bool:
    """Whether a message may go from ``old`` to ``new`` (the same status is always allowed)."""
    return old == new or Status(new) in TRANSITIONS[Status(old)]


__all__ = [
    "ACTIVE_STATUSES",
    "CANCELLED",
    "CLAIMABLE",
    "DEFERRED",
    "DELIVERED",
    "EXPIRED",
    "FAILED",
    "INITIAL",
    "QUEUED",
    "RECEIPT_OUTCOMES",
    "SENDING",
    "SENT",
    "SETTLEABLE",
    "STATUSES",
    "SUPPRESSED",
    "TERMINAL",
    "TRANSITIONS",
    "UNDELIVERED",
    "UNKNOWN",
    "UNRECONCILED",
    "Status",
    "allowed",
]
