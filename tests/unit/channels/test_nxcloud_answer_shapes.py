"""NXCloud answers as documented (docs/providers.md#nxcloud-batch-sms): item messages in plain
text with no "(NNNN)" suffix (the simulator's ``--nxcloud-plain-items``), and 13007 answered
for a whole request (``--nx-rate-limit-rate``), which must defer, never fail the batch."""

from __future__ import annotations

import json
from typing import Any

import pytest

from teledispatch.channels.base import OutMessage
from teledispatch.channels.nxcloud.adapter import NxcloudAdapter
from teledispatch.channels.nxcloud.codes import RECIPIENT_CAP_WINDOW_S
from teledispatch.config import parse_config
from teledispatch.errors import DeferredError
from teledispatch.worker.dispatch import outcomes

ADAPTER = NxcloudAdapter()
MESSAGES = [
    OutMessage(f"nx-00000000{i}", f"+86138001380{i:02d}", {"content": "x"}) for i in range(3)
]


def item(i: int, message: str | None = None) -> dict[str, Any]:
    entry = {"phone": MESSAGES[i].phone.lstrip("+"), "messageid": MESSAGES[i].id}
    if message is None:
        return {**entry, "status": "Success"}
    return {**entry, "status": "Failure", "message": message}


def parse(data: list[dict[str, Any]]) -> list[tuple[str, str | None]]:
    body = json.dumps({"code": 0, "message": "Success", "data": data}).encode()
    return [(o.status, o.error_code) for o in ADAPTER.parse_response(MESSAGES, 200, {}, body).items]


@pytest.mark.parametrize("suffix", ["", " (13007)"])
def test_a_per_number_cap_defers_that_number_in_either_form(suffix: str) -> None:
    data = [item(0), item(1, "Rate limit exceeded (5 messages per hour)" + suffix), item(2)]
    assert parse(data) == [("sent", None), ("deferred", "13007"), ("sent", None)]
    body = json.dumps({"code": 0, "data": data}).encode()
    capped = ADAPTER.parse_response(MESSAGES, 200, {}, body).items[1]
    assert capped.retry_in == RECIPIENT_CAP_WINDOW_S


def test_plain_item_texts_get_their_documented_codes() -> None:
    data = [
        item(0, "Incorrect phone number format"),
        item(1, "Empty content or illegal Keywords"),
        item(2, "Something nobody documented"),
    ]
    assert parse(data) == [("failed", "13005"), ("failed", "13009"), ("failed", "Failure")]


def test_a_request_level_13007_defers_the_batch_without_spending_an_attempt() -> None:
    body = json.dumps(
        {"code": 13007, "message": "Rate limit exceeded (5 messages per hour)", "data": None}
    ).encode()
    with pytest.raises(DeferredError) as info:
        ADAPTER.parse_response(MESSAGES, 200, {}, body)
    exc = info.value
    assert not exc.unwell and not exc.throttled
    account = parse_config(
        {"accounts": {"nx": {"channel": "nxcloud.sms", "base_url": "http://nx.test"}}}
    )["nx"]
    ids = [m.id for m in MESSAGES]
    # Even on the last attempt: the batch is held back, not failed.
    attempts = dict.fromkeys(ids, account.max_attempts)
    updates = outcomes.batch_failure(account, ids, attempts, exc, 1000.0)
    assert {(u.status, u.refund_attempt) for u in updates} == {("deferred", True)}
    assert all(u.due_at is not None and u.due_at >= 1060.0 for u in updates)
