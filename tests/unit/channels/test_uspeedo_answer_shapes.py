"""USpeedo answers in both documented shapes (docs/providers.md#uspeedo-batch-sms): the
Basic-auth reference's ``FailedTargetPhones`` and the SDKs' / older gateway's ``FailContent``
with ``SuccessCount`` and one string ``SessionNo``; a non-zero ``RetCode`` with per-number
failures and a ``SessionNo`` is a partial success.

The bodies are as the simulator writes them in each shape (``--uspeedo-shape sdk``,
``--uspeedo-partial-retcode``), which follows the SDK's ``SendBatchUSMSMessageResp``."""

from __future__ import annotations

import json
from typing import Any

import pytest

from teledispatch.channels.base import OutMessage
from teledispatch.channels.uspeedo.adapter import UspeedoAdapter
from teledispatch.errors import RejectedError, RetryableProviderError

ADAPTER = UspeedoAdapter()
MESSAGES = [
    OutMessage("u-000000001", "+8613800138000", {"template_id": "T1", "sender_id": "S"}),
    OutMessage("u-000000002", "+85255311111", {"template_id": "T1", "sender_id": "S"}),
    OutMessage("u-000000003", "+6591234567", {"template_id": "T2", "sender_id": "S"}),
]

SDK_OK_WITH_FAILURE = {
    "RetCode": 0,
    "Message": "success",
    "SuccessCount": 2,
    "SessionNo": "4e1c5c1e-1111-4d6a-9d3a-6d0a3f0b2c11",
    "FailContent": [
        {
            "TemplateId": "T1",
            "SenderId": "S",
            "FailureDetails": "",
            "Target": [
                {"Phone": "85255311111", "TemplateParams": [], "FailureDetails": "blacklisted"}
            ],
        }
    ],
}


def parse(doc: dict[str, Any], status: int = 200) -> list[tuple[str, str | None, str | None]]:
    items = ADAPTER.parse_response(MESSAGES, status, {}, json.dumps(doc).encode()).items
    assert [o.message_id for o in items] == [m.id for m in MESSAGES]
    return [(o.status, o.provider_id, o.error_text or None) for o in items]


def test_sdk_shape_with_retcode_0_names_the_refused_number() -> None:
    session = SDK_OK_WITH_FAILURE["SessionNo"]
    assert parse(SDK_OK_WITH_FAILURE) == [
        ("sent", session, None),
        ("failed", None, "blacklisted"),
        ("sent", session, None),
    ]


def test_sdk_shape_all_sent_has_an_empty_fail_content() -> None:
    doc = {"RetCode": 0, "Message": "success", "SuccessCount": 3, "SessionNo": "s-1"}
    assert parse({**doc, "FailContent": []}) == [("sent", "s-1", None)] * 3


def test_non_zero_retcode_with_failures_and_a_session_is_a_partial_success() -> None:
    doc = {**SDK_OK_WITH_FAILURE, "RetCode": 215399, "Message": "Some numbers failed"}
    assert [s for s, _, _ in parse(doc)] == ["sent", "failed", "sent"]


def test_basic_shape_partial_success_with_non_zero_retcode() -> None:
    doc = {
        "RetCode": 215399,
        "Message": "Some numbers failed",
        "SessionNo": ["s-1", "s-2"],
        "FailedTargetPhones": [{"Phone": "6591234567", "FailureReason": "bad number"}],
    }
    assert parse(doc) == [
        ("sent", "s-1", None),
        ("sent", "s-1", None),
        ("failed", None, "bad number"),
    ]


def test_a_task_content_refused_whole_fails_its_messages_only() -> None:
    doc = {
        "RetCode": 0,
        "SuccessCount": 2,
        "SessionNo": "s-1",
        "FailContent": [
            {"TemplateId": "T2", "SenderId": "S", "FailureDetails": "template not approved"}
        ],
    }
    assert [s for s, _, _ in parse(doc)] == ["sent", "sent", "failed"]


@pytest.mark.parametrize(
    ("doc", "error"),
    [
        # No SessionNo: nothing was accepted, whatever failures are listed.
        ({"RetCode": 215392, "Message": "bad", "FailContent": []}, RejectedError),
        (
            {
                "RetCode": 215392,
                "Message": "bad",
                "FailContent": SDK_OK_WITH_FAILURE["FailContent"],
            },
            RejectedError,
        ),
        # A SessionNo but no per-number failure: the code stands for the whole request.
        ({"RetCode": 215400, "Message": "server error", "SessionNo": "s"}, RetryableProviderError),
    ],
)
def test_non_zero_retcode_without_both_is_still_a_whole_batch_error(
    doc: dict[str, Any], error: type[Exception]
) -> None:
    with pytest.raises(error):
        ADAPTER.parse_response(MESSAGES, 200, {}, json.dumps(doc).encode())
