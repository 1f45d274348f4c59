"""USpeedo adapter: building and parsing as pure functions over recorded pairs, plus fuzzing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from teledispatch.channels.base import BatchResult, OutMessage
from teledispatch.channels.registry import rules_for
from teledispatch.channels.uspeedo.adapter import UspeedoAdapter
from teledispatch.config import AccountConfig
from teledispatch.errors import DispatchError
from tests.unit.channels.recorded_cases import check_raised, replay

RECORDED = json.loads((Path(__file__).parent / "recorded" / "uspeedo.json").read_text("utf-8"))
RULES = rules_for("uspeedo.sms")
ADAPTER = UspeedoAdapter()
SECRET = "YOUR_ACCESSKEY_SECRET"


def _account() -> AccountConfig:
    return AccountConfig(
        name="u",
        channel="uspeedo.sms",
        base_url="https://api.uspeedo.com/",
        access_key="YOUR_ACCESSKEY_ID",
        secret=SecretStr(SECRET),
    )


def _messages(raw: list[dict[str, Any]]) -> list[OutMessage]:
    return [OutMessage(m["id"], m["phone"], m["fields"]) for m in raw]


MESSAGES = _messages(RECORDED["messages"])


def test_build_matches_recorded_request() -> None:
    request = ADAPTER.build_request(_account(), MESSAGES, 1_700_000_000.0)
    expected = RECORDED["request"]
    assert request.method == expected["method"]
    assert request.url == expected["url"]
    assert dict(request.headers) == expected["headers"]
    assert request.body == expected["body"].encode()


def test_build_is_pure_and_keeps_the_secret_out_of_repr_of_body() -> None:
    a = ADAPTER.build_request(_account(), MESSAGES, 1.0)
    b = ADAPTER.build_request(_account(), MESSAGES, 2.0)
    assert a == b
    assert SECRET.encode() not in a.body
    assert "YOUR_ACCESSKEY_SECRET" not in repr(_account())


def test_templates_are_grouped_in_first_seen_order_with_interleaved_input() -> None:
    msgs = [MESSAGES[0], MESSAGES[2], MESSAGES[1]]
    body = json.loads(ADAPTER.build_request(_account(), msgs, 0).body)
    content = body["TaskContent"]
    assert [c["TemplateId"] for c in content] == ["tpl_otp", "tpl_notice"]
    assert [t["Phone"] for t in content[0]["Target"]] == ["8613800138000", "8613900139000"]


def test_same_template_different_sender_is_a_separate_task_content() -> None:
    msgs = [
        OutMessage("a" * 10, "+8613800138000", {"template_id": "t", "sender_id": "A"}),
        OutMessage("b" * 10, "+8613800138001", {"template_id": "t", "sender_id": "B"}),
    ]
    body = json.loads(ADAPTER.build_request(_account(), msgs, 0).body)
    assert [(c["TemplateId"], c["SenderId"]) for c in body["TaskContent"]] == [
        ("t", "A"),
        ("t", "B"),
    ]


def test_group_key_never_splits() -> None:
    assert RULES.group_key({"template_id": "a"}) == RULES.group_key({"template_id": "b"})


@pytest.mark.parametrize("case", RECORDED["responses"], ids=lambda c: c["name"])
def test_parse_recorded_response(case: dict[str, Any]) -> None:
    if "raises" in case:
        assert SECRET not in str(check_raised(ADAPTER, MESSAGES, case))
        return
    result = replay(ADAPTER, MESSAGES, case)
    got = [[o.status, o.provider_id, o.error_code] for o in result.items]
    assert got == case["items"]
    assert [o.message_id for o in result.items] == [m.id for m in MESSAGES]


def test_failure_reason_is_kept() -> None:
    body = {
        "RetCode": 0,
        "SessionNo": ["s"],
        "FailedTargetPhones": [{"Phone": "85255311111", "FailureReason": "blacklisted"}],
    }
    result = ADAPTER.parse_response(MESSAGES, 200, {}, json.dumps(body).encode())
    assert result.items[2].error_text == "blacklisted"


SAME_PHONE = [
    OutMessage("p-000000001", "+8613800138000", {"template_id": "A", "sender_id": "",
                                                 "template_params": ["1"]}),
    OutMessage("p-000000002", "+8613800138000", {"template_id": "B", "sender_id": "",
                                                 "template_params": ["2"]}),
    OutMessage("p-000000003", "+8613800138000", {"template_id": "C", "sender_id": "",
                                                 "template_params": ["2"]}),
]  # fmt: skip


def _parse_failures(msgs: list[OutMessage], failures: list[dict[str, Any]]) -> list[str]:
    body = {"RetCode": 0, "SessionNo": ["a", "b", "c"], "FailedTargetPhones": failures}
    return [
        o.status for o in ADAPTER.parse_response(msgs, 200, {}, json.dumps(body).encode()).items
    ]


def test_shared_phone_matched_by_template_params() -> None:
    failures = [{"Phone": "8613800138000", "TemplateParams": ["1"], "FailureReason": "x"}]
    assert _parse_failures(SAME_PHONE, failures) == ["failed", "sent", "sent"]


def test_shared_phone_same_params_is_unknown_not_guessed() -> None:
    failures = [{"Phone": "8613800138000", "TemplateParams": ["2"], "FailureReason": "x"}]
    assert _parse_failures(SAME_PHONE, failures) == ["sent", "unknown", "unknown"]


def test_shared_phone_without_params_is_unknown() -> None:
    failures = [{"Phone": "8613800138000", "FailureReason": "x"}]
    assert _parse_failures(SAME_PHONE, failures) == ["unknown", "unknown", "unknown"]


def test_shared_phone_all_reported_means_all_failed() -> None:
    failures = [{"Phone": "8613800138000", "FailureReason": "x"}] * 3
    assert _parse_failures(SAME_PHONE, failures) == ["failed", "failed", "failed"]


def test_unknown_phone_in_failures_is_ignored() -> None:
    failures: list[Any] = [{"Phone": "15550000000", "FailureReason": "x"}, "junk", None]
    assert _parse_failures(SAME_PHONE, failures) == ["sent", "sent", "sent"]


def test_session_count_matching_nothing_keeps_all_ids() -> None:
    body = {"RetCode": 0, "SessionNo": ["a", "b", "c", "d"]}
    result = ADAPTER.parse_response(MESSAGES, 200, {}, json.dumps(body).encode())
    assert {o.provider_id for o in result.items} == {"a,b,c,d"}


# --- fuzzing: whatever the bytes, a DispatchError or one outcome per message ---------------

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                 max_size=4),
    max_leaves=20,
)  # fmt: skip
_entry = st.fixed_dictionaries(
    {},
    optional={
        "Phone": st.sampled_from(["8613800138000", "+8613900139000", "85255311111", "x"]) | _json,
        "TemplateParams": st.lists(st.sampled_from(["123456", "654321", 1]), max_size=2) | _json,
        "FailureReason": _json,
    },
)
_shaped = st.fixed_dictionaries(
    {},
    optional={
        "RetCode": st.sampled_from([0, "0", 215400, 215392, 215397, 1, -1, 0.0, True]) | _json,
        "Message": _json,
        "SessionNo": st.lists(st.text(max_size=5) | _json, max_size=5) | _json,
        "FailedTargetPhones": st.lists(_entry | _json, max_size=5) | _json,
    },
)
_status = st.sampled_from([200, 201, 204, 301, 400, 401, 403, 404, 429, 500, 502, 503])


def _check(result_or_error: BatchResult | DispatchError) -> None:
    if isinstance(result_or_error, BatchResult):
        assert [o.message_id for o in result_or_error.items] == [m.id for m in MESSAGES]


def _run(status: int, body: bytes) -> None:
    try:
        result: BatchResult | DispatchError = ADAPTER.parse_response(MESSAGES, status, {}, body)
    except DispatchError as exc:
        result = exc
    _check(result)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(_status, st.binary(max_size=300))
def test_fuzz_arbitrary_bytes(status: int, body: bytes) -> None:
    _run(status, body)


@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
@given(_status, _shaped | _json)
def test_fuzz_json_shapes(status: int, doc: Any) -> None:
    _run(status, json.dumps(doc).encode())


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 100_000 + b"]" * 100_000,
        b'{"RetCode":0,"SessionNo":[' + b'"s",' * 200_000 + b'"s"]}',
        b'{"RetCode":' + b"9" * 5000 + b"}",
        b'{"RetCode":1e999}',
        b"\xff\xfe\x00",
    ],
    ids=["deep", "huge", "long-int", "inf", "bad-utf"],
)
def test_hostile_bodies(body: bytes) -> None:
    _run(200, body)
