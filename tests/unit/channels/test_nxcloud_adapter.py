"""NXCloud adapter: the published signing vector, request bytes, every answer classified, and
answers of any shape never escaping as anything but a DispatchError."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from teledispatch.channels.base import OutMessage
from teledispatch.channels.nxcloud.adapter import NxcloudAdapter, sign
from teledispatch.config import parse_config
from teledispatch.errors import (
    DispatchError,
    MalformedResponseError,
    RejectedError,
    RetryableProviderError,
    ThrottledError,
)

ACCOUNT = parse_config(
    {
        "accounts": {
            "nx": {
                "channel": "nxcloud.sms",
                "base_url": "https://api2.nxcloud.com/",
                "access_key": "ak1",
                "secret": "sk1",
                "app_key": "app1",
            }
        }
    }
)["nx"]
MSGS = [
    OutMessage("job1-0", "+8615088888888", {"content": "hi", "source_address": "ACME"}),
    OutMessage("job1-1", "+8615099999999", {"content": "yo", "ext": "e1"}),
]
A = NxcloudAdapter()


def test_published_signing_vector() -> None:
    headers = {"accessKey": "fme2na3kdi3ki", "action": "send", "bizType": "1"}
    headers["ts"] = "1655710885431"
    body = '{"name":"牛小信","id":10001}'
    assert sign(headers, body, "abciiiko2k3") == "87c3560d3331ae23f1021e2025722354"


def test_request_bytes_and_headers() -> None:
    req = A.build_request(ACCOUNT, MSGS, now=1700000000.123)
    assert req.url == "https://api2.nxcloud.com/v1/sms/multi/mt"
    body = json.loads(req.body)
    assert body["appKey"] == "app1"
    assert body["items"][0] == {
        "phone": "8615088888888",
        "sysMessageId": "job1-0",
        "content": "hi",
        "sourceAddress": "ACME",
    }
    assert req.headers["ts"] == "1700000000123"
    signed = {k: req.headers[k] for k in ("accessKey", "action", "bizType", "ts")}
    assert req.headers["sign"] == sign(signed, req.body.decode(), "sk1")
    assert "sk1" not in repr(req.headers) and b"sk1" not in req.body


def answer(code: Any, data: Any = None, status: int = 200) -> Any:
    return A.parse_response(MSGS, status, {}, json.dumps({"code": code, "data": data}).encode())


def test_partial_failure_per_item() -> None:
    data = [
        {"messageid": "job1-0", "status": "Success"},
        {"messageid": "job1-1", "status": "Failure", "message": "Bad phone (13005)"},
    ]
    items = {i.message_id: i for i in answer(0, data).items}
    assert items["job1-0"].status == "sent" and items["job1-0"].provider_id == "job1-0"
    assert (items["job1-1"].status, items["job1-1"].error_code) == ("failed", "13005")
    assert items["job1-1"].error_text == "Bad phone (13005)"


def test_13007_defers_only_that_number() -> None:
    data = [
        {"messageid": "job1-0", "status": "Success"},
        {"messageid": "job1-1", "status": "Failure", "message": "Rate limit (13007)"},
    ]
    deferred = [i for i in answer(0, data).items if i.status == "deferred"]
    assert [(i.message_id, i.retry_in) for i in deferred] == [("job1-1", 3600.0)]


def test_item_missing_from_answer_is_unknown() -> None:
    items = answer(0, [{"messageid": "job1-0", "status": "Success"}]).items
    assert [i.status for i in items] == ["sent", "unknown"]


@pytest.mark.parametrize(
    ("code", "status", "cls"),
    [
        (13008, 200, ThrottledError),
        (None, 429, ThrottledError),
        (-1, 200, RetryableProviderError),
        (None, 503, RetryableProviderError),
        (1003, 200, RejectedError),
        (1102, 200, RejectedError),
        (9000, 200, RejectedError),
        ("abc", 200, MalformedResponseError),
    ],
)
def test_batch_errors_classified(code: Any, status: int, cls: type[DispatchError]) -> None:
    with pytest.raises(cls):
        answer(code, None, status)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(status=st.integers(100, 599), body=st.binary(max_size=300))
def test_any_bytes_are_classified(status: int, body: bytes) -> None:
    try:
        result = A.parse_response(MSGS, status, {}, body)
    except DispatchError:
        return
    assert sorted(i.message_id for i in result.items) == ["job1-0", "job1-1"]


@settings(max_examples=300, deadline=None)
@given(doc=json_values, status=st.sampled_from([200, 400, 500]))
def test_any_json_shape_is_classified(doc: Any, status: int) -> None:
    body = json.dumps(doc).encode()
    try:
        result = A.parse_response(MSGS, status, {}, body)
    except DispatchError:
        return
    assert len(result.items) == len(MSGS)


@settings(max_examples=200, deadline=None)
@given(doc=json_values, status=st.integers(100, 599))
def test_any_status_answer_is_classified(doc: Any, status: int) -> None:
    outcome = A.parse_status(MSGS[0], status, {}, json.dumps(doc).encode())
    assert outcome.status in ("sent", "failed", "retry", "unknown")


def test_request_body_is_byte_exact() -> None:
    """The body is signed as sent, so its bytes (field order, no spaces, UTF-8 unescaped,
    None fields left out) must not drift between releases."""
    msgs = [
        OutMessage(
            "job1-0",
            "+8615088888888",
            {"dr_url": "u", "content": "héllo 中", "ext": None, "source_address": "ACME"},
        ),
        OutMessage("job1-1", "+8615099999999", {"link_verbose": 1, "short_link": True}),
    ]
    req = A.build_request(ACCOUNT, msgs, now=1700000000.123)
    assert (
        req.body
        == (
            '{"appKey":"app1","items":['
            '{"phone":"8615088888888","sysMessageId":"job1-0","content":"héllo 中",'
            '"sourceAddress":"ACME","drUrl":"u"},'
            '{"phone":"8615099999999","sysMessageId":"job1-1","shortLink":true,"linkVerbose":1}]}'
        ).encode()
    )
    assert req.headers["sign"] == "0f9b29ecaffa9be9fe3f3cbea3f4f1cb"
