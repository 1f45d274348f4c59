"""Volcengine BindAXN adapter: recorded pairs, the pre-send expiry check, fuzzing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from teledispatch import errors
from teledispatch.channels.base import BatchResult, OutMessage
from teledispatch.channels.volc.axn_adapter import VolcAxnAdapter
from teledispatch.channels.volc.axn_rules import MAX_EXPIRE_TIME
from teledispatch.channels.volc.gateway import sign
from teledispatch.config import AccountConfig
from teledispatch.errors import DispatchError
from tests.unit.channels.recorded_cases import check_raised, replay

RECORDED = json.loads((Path(__file__).parent / "recorded" / "volc_axn.json").read_text("utf-8"))
ADAPTER = VolcAxnAdapter()
MESSAGES = [OutMessage(m["id"], m["phone"], m["fields"]) for m in RECORDED["messages"]]
NOW: float = RECORDED["now"]
EXPIRE: int = RECORDED["messages"][0]["fields"]["expire_time"]


def _account() -> AccountConfig:
    raw = RECORDED["account"]
    return AccountConfig(
        name="axn",
        channel="volc.axn.bind",
        base_url=raw["base_url"],
        access_key=raw["access_key"],
        secret=SecretStr(raw["secret"]),
    )


def _with(**fields: Any) -> OutMessage:
    return OutMessage(MESSAGES[0].id, MESSAGES[0].phone, {**MESSAGES[0].fields, **fields})


def test_build_matches_recorded_request() -> None:
    request = ADAPTER.build_request(_account(), MESSAGES, NOW)
    expected = RECORDED["request"]
    assert request.method == expected["method"]
    assert request.url == expected["url"]
    assert dict(request.headers) == expected["headers"]
    assert request.body.decode() == expected["body"]
    assert parse_qsl(request.body.decode()) == [
        ("PhoneNoA", "18811791647"),
        ("PhoneNoB", "13718578258"),
        ("PhoneNoX", "13120407901"),
        ("NumberPoolNo", "NP167092127702825445"),
        ("ExpireTime", "1672216113"),
        ("AudioRecordFlag", "1"),
        ("UserData", "order=42&note=hello world"),
    ]


def test_signature_covers_the_form_body() -> None:
    request = ADAPTER.build_request(_account(), MESSAGES, NOW)
    again = sign(
        "POST", request.url, {k: v for k, v in request.headers.items() if k != "Authorization"},
        request.body, access_key="AKLTexample", secret=RECORDED["account"]["secret"],
        region="cn-north-1", service="vms",
    )  # fmt: skip
    assert request.headers["Authorization"] == again.authorization
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"


def test_optional_fields_left_out_and_flag_zero() -> None:
    fields = {
        "phone": "+8618811791647",
        "phone_x": "+8613120407901",
        "number_pool_no": "NP1",
        "expire_time": EXPIRE,
        "audio_record_flag": 0,
    }
    request = ADAPTER.build_request(
        _account(), [OutMessage("x" * 10, str(fields["phone"]), fields)], NOW
    )
    assert [k for k, _ in parse_qsl(request.body.decode())] == [
        "PhoneNoA", "PhoneNoX", "NumberPoolNo", "ExpireTime", "AudioRecordFlag"
    ]  # fmt: skip
    assert "AudioRecordFlag=0" in request.body.decode()


def test_more_than_one_binding_per_request_is_refused() -> None:
    with pytest.raises(ValueError, match="one number per request"):
        ADAPTER.build_request(_account(), MESSAGES * 2, NOW)


# --- the pre-send check -------------------------------------------------------------------


def test_precheck_passes_a_fresh_binding() -> None:
    assert ADAPTER.precheck(MESSAGES[0], NOW) is None
    assert ADAPTER.precheck(MESSAGES[0], EXPIRE - 66) is None


@pytest.mark.parametrize("now", [EXPIRE - 65, EXPIRE - 60, EXPIRE - 1, EXPIRE, EXPIRE + 3600])
def test_precheck_fails_a_binding_expiring_too_soon(now: float) -> None:
    outcome = ADAPTER.precheck(MESSAGES[0], now)
    assert outcome is not None
    assert (outcome.message_id, outcome.status, outcome.error_code) == (
        MESSAGES[0].id,
        "failed",
        "ExpireTimeTooSoon",
    )


@pytest.mark.parametrize("value", [None, "soon", 1.5, True, MAX_EXPIRE_TIME, [1]])
def test_precheck_fails_an_unusable_expire_time(value: Any) -> None:
    outcome = ADAPTER.precheck(_with(expire_time=value), NOW)
    assert outcome is not None and outcome.error_code == "ExpireTimeInvalid"


def test_build_request_refuses_to_send_a_stale_binding() -> None:
    with pytest.raises(errors.RejectedError) as info:
        ADAPTER.build_request(_account(), MESSAGES, EXPIRE - 30)
    assert info.value.code == "ExpireTimeTooSoon"
    assert not info.value.retryable and not info.value.may_have_been_sent


def test_digit_string_expire_time_is_accepted() -> None:
    request = ADAPTER.build_request(_account(), [_with(expire_time=str(EXPIRE))], NOW)
    assert f"ExpireTime={EXPIRE}" in request.body.decode()


# --- parsing ------------------------------------------------------------------------------


@pytest.mark.parametrize("case", RECORDED["responses"], ids=lambda c: c["name"])
def test_parse_recorded_response(case: dict[str, Any]) -> None:
    if "raises" in case:
        check_raised(ADAPTER, MESSAGES, case)
        return
    result = replay(ADAPTER, MESSAGES, case)
    got = [[o.status, o.provider_id, o.error_code, o.error_text] for o in result.items]
    assert got == case["items"]
    assert [o.message_id for o in result.items] == [MESSAGES[0].id]


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
_shaped = st.fixed_dictionaries(
    {},
    optional={
        "ResponseMetadata": st.fixed_dictionaries(
            {}, optional={"Error": st.fixed_dictionaries(
                {}, optional={"Code": st.sampled_from(["ConflictWithExisting", "InternalError",
                                                       "SignatureDoesNotMatch"]) | _json,
                              "Message": _json}) | _json}
        ) | _json,
        "Result": st.fixed_dictionaries(
            {}, optional={"SubId": st.text(max_size=10) | _json,
                          "Status": st.sampled_from([0, 1, 2]) | _json}
        ) | _json,
    },
)  # fmt: skip
_status = st.sampled_from([200, 400, 401, 403, 404, 429, 500, 503])


def _run(status: int, body: bytes) -> None:
    try:
        result = ADAPTER.parse_response(MESSAGES, status, {}, body)
    except DispatchError:
        return
    assert isinstance(result, BatchResult)
    assert [o.message_id for o in result.items] == [MESSAGES[0].id]


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(_status, st.binary(max_size=300))
def test_fuzz_arbitrary_bytes(status: int, body: bytes) -> None:
    _run(status, body)


@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
@given(_status, _shaped | _json)
def test_fuzz_json_shapes(status: int, doc: Any) -> None:
    _run(status, json.dumps(doc).encode())


@settings(max_examples=200)
@given(_json, st.floats(allow_nan=True) | st.integers())
def test_fuzz_precheck(expire: Any, now: float) -> None:
    outcome = ADAPTER.precheck(_with(expire_time=expire), float(now))
    assert outcome is None or outcome.status == "failed"


@pytest.mark.parametrize(
    "body",
    [b"[" * 100_000 + b"]" * 100_000, b'{"Result":{"SubId":"' + b"x" * 1_000_000 + b'"}}'],
    ids=["deep", "huge"],
)
def test_hostile_bodies(body: bytes) -> None:
    _run(200, body)


def test_precheck_refuses_when_the_clock_is_nan() -> None:
    outcome = ADAPTER.precheck(MESSAGES[0], float("nan"))
    assert outcome is not None and outcome.error_code == "ExpireTimeTooSoon"
