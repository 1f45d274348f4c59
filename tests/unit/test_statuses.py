"""The transitions table is consistent: every status has a row, the terminal statuses have no
way out, ``sent`` leaves only for a receipt's outcome, and every status lies on a path from a
new message to a terminal one."""

from __future__ import annotations

import pytest

from teledispatch import statuses
from teledispatch.statuses import (
    INITIAL,
    RECEIPT_OUTCOMES,
    TERMINAL,
    TRANSITIONS,
    Status,
    allowed,
)


def _reachable(start: frozenset[Status]) -> set[Status]:
    seen = set(start)
    todo = list(start)
    while todo:
        for nxt in TRANSITIONS[todo.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def test_every_status_has_a_row_and_only_statuses_appear() -> None:
    assert set(TRANSITIONS) == set(Status)
    for targets in TRANSITIONS.values():
        assert targets <= set(Status)


def test_stored_words_are_unchanged() -> None:
    # Lookups, dashboards and stored rows depend on these words: extend, never rename.
    assert [s.value for s in Status] == [
        "queued",
        "deferred",
        "sending",
        "unknown",
        "sent",
        "failed",
        "cancelled",
        "delivered",
        "undelivered",
        "expired",
        "suppressed",
    ]
    assert statuses.QUEUED == "queued" and statuses.UNDELIVERED == "undelivered"


def test_no_status_changes_into_itself() -> None:
    # Staying put is implied (allowed() says so); a row listing it would hide a missing guard.
    for status, targets in TRANSITIONS.items():
        assert status not in targets


def test_terminal_statuses_have_no_exits() -> None:
    assert {s for s, targets in TRANSITIONS.items() if not targets} == TERMINAL


def test_only_receipts_move_a_sent_message() -> None:
    assert TRANSITIONS[Status.SENT] == RECEIPT_OUTCOMES
    assert RECEIPT_OUTCOMES <= TERMINAL
    # A receipt never reaches a message not yet handed to the provider.
    into_receipts = {s for s, targets in TRANSITIONS.items() if targets & RECEIPT_OUTCOMES}
    assert into_receipts == set(statuses.SETTLEABLE)


def test_every_status_is_reachable_and_can_finish() -> None:
    assert _reachable(INITIAL) == set(Status)
    for status in Status:
        assert _reachable(frozenset({status})) & TERMINAL, f"{status} can never end"


def test_claims_and_cancels_take_only_unclaimed_messages() -> None:
    claimable = set(statuses.CLAIMABLE)
    assert {s for s, t in TRANSITIONS.items() if Status.SENDING in t} == claimable
    assert {s for s, t in TRANSITIONS.items() if Status.CANCELLED in t} == claimable
    assert claimable <= statuses.ACTIVE_STATUSES


@pytest.mark.parametrize(
    ("old", "new", "ok"),
    [
        ("queued", "queued", True),
        ("queued", "sending", True),
        ("sending", "unknown", True),
        ("sent", "delivered", True),
        ("sent", "failed", False),
        ("failed", "queued", False),
        ("delivered", "undelivered", False),
        ("cancelled", "sending", False),
    ],
)
def test_allowed(old: str, new: str, ok: bool) -> None:
    assert allowed(old, new) is ok


def test_allowed_refuses_unknown_words() -> None:
    with pytest.raises(ValueError):
        allowed("queued", "bogus")
