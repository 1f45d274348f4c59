"""Volcengine BatchAppend adapter: recorded request/response pairs, every error code, fuzzing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from teledispatch import errors
from teledispatch.channels.base import BatchResult, OutMessage
from teledispatch.channels.registry import rules_for
from teledispatch.channels.volc.gateway import sign
from teledispatch.channels.volc.vms_adapter import VolcVmsAdapter, national_phone
from teledispatch.config import AccountConfig
from teledispatch.errors import DispatchError
from tests.unit.channels.recorded_cases import check_raised, replay

RECORDED = json.loads((Path(__file__).parent / "recorded" / "volc_vms.json").read_text("utf-8"))
RULES = rules_for("volc.vms.append")
ADAPTER = VolcVmsAdapter()
MESSAGES = [OutMessage(m["id"], m["phone"], m["fields"]) for m in RECORDED["messages"]]


def _account(**kw: Any) -> AccountConfig:
    raw = RECORDED["account"]
    values: dict[str, Any] = {
        "name": "vms",
        "channel": "volc.vms.append",
        "base_url": raw["base_url"],
        "access_key": raw["access_key"],
        "secret": SecretStr(raw["secret"]),
        **kw,
    }
    return AccountConfig(**values)


def test_build_matches_recorded_request() -> None:
    request = ADAPTER.build_request(_account(), MESSAGES, RECORDED["now"])
    expected = RECORDED["request"]
    assert request.method == expected["method"]
    assert request.url == expected["url"]
    assert dict(request.headers) == expected["headers"]
    assert json.loads(request.body) == expected["body"]


def test_signature_covers_the_exact_body_sent() -> None:
    request = ADAPTER.build_request(_account(), MESSAGES, RECORDED["now"])
    again = sign(
        "POST", request.url, {k: v for k, v in request.headers.items() if k != "Authorization"},
        request.body, access_key="AKLTexample", secret=RECORDED["account"]["secret"],
        region="cn-north-1", service="vms",
    )  # fmt: skip
    assert request.headers["Authorization"] == again.authorization
    assert RECORDED["account"]["secret"] not in repr(request)


def test_region_and_service_come_from_the_account() -> None:
    request = ADAPTER.build_request(_account(region="cn-beijing"), MESSAGES, 0.0)
    assert "/19700101/cn-beijing/vms/request" in request.headers["Authorization"]


def test_base_url_with_port_and_path() -> None:
    request = ADAPTER.build_request(_account(base_url="http://127.0.0.1:9000/volc/"), MESSAGES, 0)
    assert request.url == "http://127.0.0.1:9000/volc/?Action=BatchAppend&Version=2022-01-01"
    assert request.headers["Host"] == "127.0.0.1:9000"


def test_dict_params_are_serialised_compactly() -> None:
    msg = OutMessage(
        "d" * 10, "+8613800138000", {"task_open_id": "t", "phone_param_json": {"a": 1}}
    )
    body = json.loads(ADAPTER.build_request(_account(), [msg], 0).body)
    assert body["PhoneList"][0]["PhoneParamJson"] == '{"a":1}'


def test_group_key_is_the_task() -> None:
    assert RULES.group_key({"task_open_id": "t1"}) == "t1"
    assert RULES.group_key({"task_open_id": "t1"}) != RULES.group_key({"task_open_id": "t2"})


def test_two_tasks_in_one_request_is_refused() -> None:
    other = OutMessage("o" * 10, "+8613800138000", {"task_open_id": "other"})
    with pytest.raises(ValueError, match="one task"):
        ADAPTER.build_request(_account(), [*MESSAGES, other], 0)


@pytest.mark.parametrize(
    ("e164", "sent"),
    [
        ("+8613800138000", "13800138000"),
        ("+862131075869", "02131075869"),
        ("+861012345678", "01012345678"),
        ("+8613900139000", "13900139000"),
        ("+85255311111", "85255311111"),
    ],
)
def test_phone_format(e164: str, sent: str) -> None:
    assert national_phone(e164) == sent


@pytest.mark.parametrize("case", RECORDED["responses"], ids=lambda c: c["name"])
def test_parse_recorded_response(case: dict[str, Any]) -> None:
    if "raises" in case:
        check_raised(ADAPTER, MESSAGES, case)
        return
    result = replay(ADAPTER, MESSAGES, case)
    assert [[o.status, o.provider_id, o.error_code] for o in result.items] == case["items"]
    assert [o.message_id for o in result.items] == [m.id for m in MESSAGES]


def test_fail_list_desc_is_the_error_text() -> None:
    case = next(c for c in RECORDED["responses"] if c["name"] == "partial failure by Index")
    result = ADAPTER.parse_response(MESSAGES, 200, {}, json.dumps(case["body"]).encode())
    assert result.items[2].error_text == "重复项目"


def test_retry_after_header_is_passed_on() -> None:
    body = json.dumps({"ResponseMetadata": {"Error": {"Code": "FlowLimitExceeded"}}}).encode()
    with pytest.raises(errors.ThrottledError) as info:
        ADAPTER.parse_response(MESSAGES, 429, {"retry-after": "7"}, body)
    assert info.value.retry_after == 7.0


# --- fuzzing ------------------------------------------------------------------------------

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
_entry = st.fixed_dictionaries(
    {},
    optional={
        "Index": st.integers(-2, 4) | _json,
        "Phone": st.sampled_from(["13800138000", "8613900139000", "02131075869", ""]) | _json,
        "Type": _json,
        "Desc": _json,
    },
)
_error = st.fixed_dictionaries(
    {}, optional={"Code": st.sampled_from(["InternalError", "TaskNotFound", ""]) | _json,
                  "Message": _json}
)  # fmt: skip
_shaped = st.fixed_dictionaries(
    {},
    optional={
        "ResponseMetadata": st.fixed_dictionaries({}, optional={"Error": _error | _json}) | _json,
        "Result": st.fixed_dictionaries(
            {}, optional={"FailList": st.lists(_entry | _json, max_size=4) | _json,
                          "TaskOpenId": _json}
        ) | _json,
    },
)  # fmt: skip
_status = st.sampled_from([200, 204, 400, 401, 403, 404, 429, 500, 503])


def _run(status: int, body: bytes) -> None:
    try:
        result = ADAPTER.parse_response(MESSAGES, status, {}, body)
    except DispatchError:
        return
    assert isinstance(result, BatchResult)
    assert [o.message_id for o in result.items] == [m.id for m in MESSAGES]


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(_status, st.binary(max_size=300))
def test_fuzz_arbitrary_bytes(status: int, body: bytes) -> None:
    _run(status, body)


@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
@given(_status, _shaped | _json)
def test_fuzz_json_shapes(status: int, doc: Any) -> None:
    _run(status, json.dumps(doc).encode())


@settings(max_examples=100)
@given(st.lists(st.text(max_size=5), max_size=4), st.dictionaries(st.text(max_size=5), _json))
def test_fuzz_headers(names: list[str], headers: dict[str, Any]) -> None:
    hdrs = {k: str(v)[:20] for k, v in headers.items()} | {"Retry-After": "".join(names)}
    with pytest.raises(errors.ThrottledError) as info:
        ADAPTER.parse_response(MESSAGES, 429, hdrs, b"")
    assert info.value.retry_after is None or 0 <= info.value.retry_after < 86400


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 100_000 + b"]" * 100_000,
        b'{"Result":{"FailList":[' + b'{"Index":0},' * 100_000 + b'{"Index":1}]}}',
        b'{"Result":{"FailList":[{"Index":' + b"9" * 5000 + b"}]}}",
        b'{"Result":{"FailList":[{"Index":1e999}]}}',
        b"\xff\xfe\x00",
    ],
    ids=["deep", "huge", "long-int", "inf", "bad-utf"],
)
def test_hostile_bodies(body: bytes) -> None:
    _run(200, body)
