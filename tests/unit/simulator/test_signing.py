"""The simulator's own verifiers against the published vectors, and one-byte tampering."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from teledispatch.simulator.nxcloud_sign import nxcloud_sign, nxcloud_sign_matches
from teledispatch.simulator.volc_sign import (
    MAX_CLOCK_SKEW_S,
    VolcAuthError,
    canonical_query,
    canonical_request,
    compute_signature,
    parse_x_date,
    sha256_hex,
    sign_headers,
    verify_request,
)

NX_PARAMS = {"accessKey": "fme2na3kdi3ki", "action": "send", "bizType": "1", "ts": "1655710885431"}
NX_BODY = '{"name":"牛小信","id":10001}'.encode()
NX_SECRET = "abciiiko2k3"
NX_SIGN = "87c3560d3331ae23f1021e2025722354"

VOLC_AK = "AKLTMjI2ODVlYzI3ZGY1NGU4ZjhjYWRjMTlmNTM5OTZkYzE"
VOLC_SK = "TnpCak5XWXpZV1U0WkRaaE5ERmxaR0ZpTmpjeVkyUXlZek0wTWpJMU1qWQ=="
VOLC_QUERY = "Action=ListUsers&Limit=10&Offset=0&Version=2018-01-01"
VOLC_DATE = "20201230T081805Z"
VOLC_CT = "application/x-www-form-urlencoded; charset=utf-8"


def test_nxcloud_published_vector() -> None:
    assert nxcloud_sign(NX_PARAMS, NX_BODY, NX_SECRET) == NX_SIGN
    assert nxcloud_sign_matches(NX_PARAMS, NX_BODY, NX_SECRET, NX_SIGN.upper())


def test_nxcloud_header_order_is_by_name_not_by_insertion() -> None:
    shuffled = dict(reversed(list(NX_PARAMS.items())))
    assert nxcloud_sign(shuffled, NX_BODY, NX_SECRET) == NX_SIGN


def test_nxcloud_empty_body_leaves_out_body_part() -> None:
    import hashlib

    expected = hashlib.md5(
        b"accessKey=fme2na3kdi3ki&action=send&bizType=1&ts=1655710885431&accessSecret=abciiiko2k3"
    ).hexdigest()
    assert nxcloud_sign(NX_PARAMS, b"", NX_SECRET) == expected


@pytest.mark.parametrize("field", sorted(NX_PARAMS))
def test_nxcloud_one_changed_header_fails(field: str) -> None:
    params = dict(NX_PARAMS)
    params[field] = params[field][:-1] + ("x" if params[field][-1] != "x" else "y")
    assert not nxcloud_sign_matches(params, NX_BODY, NX_SECRET, NX_SIGN)


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_nxcloud_any_one_byte_body_change_fails(data: st.DataObject) -> None:
    index = data.draw(st.integers(0, len(NX_BODY) - 1))
    delta = data.draw(st.integers(1, 255))
    tampered = bytearray(NX_BODY)
    tampered[index] = (tampered[index] + delta) % 256
    assert not nxcloud_sign_matches(NX_PARAMS, bytes(tampered), NX_SECRET, NX_SIGN)


def test_nxcloud_wrong_secret_fails() -> None:
    assert not nxcloud_sign_matches(NX_PARAMS, NX_BODY, NX_SECRET + "x", NX_SIGN)


def _vector_headers() -> dict[str, str]:
    return {
        "content-type": VOLC_CT,
        "host": "iam.volcengineapi.com",
        "x-content-sha256": sha256_hex(b""),
        "x-date": VOLC_DATE,
    }


def test_volc_published_vector() -> None:
    headers = _vector_headers()
    canonical = canonical_request("GET", "/", VOLC_QUERY, headers, sorted(headers), sha256_hex(b""))
    assert sha256_hex(canonical.encode()) == (
        "3a4d4dee07c3308a52da01bc12d7a83c3705bfa543f51648f46de880bb2a7447"
    )
    assert compute_signature(VOLC_SK, VOLC_DATE, "cn-north-1", "iam", canonical) == (
        "28eeabbbd726b87002e0fe58ad8c1c768e619b06e2646f35b6ad7ed029a6d8a7"
    )


def _vector_request() -> dict[str, str]:
    signed = sign_headers(
        access_key=VOLC_AK,
        secret=VOLC_SK,
        method="GET",
        host="iam.volcengineapi.com",
        path="/",
        raw_query=VOLC_QUERY,
        body=b"",
        x_date=VOLC_DATE,
        region="cn-north-1",
        service="iam",
        content_type=VOLC_CT,
    )
    headers = {k.lower(): v for k, v in signed.items()}
    headers["host"] = "iam.volcengineapi.com"
    return headers


def _verify(
    headers: dict[str, str], *, query: str = VOLC_QUERY, body: bytes = b"", now: float | None = None
) -> str:
    if now is None:
        now = parse_x_date(VOLC_DATE)
        assert now is not None
    return verify_request(
        method="GET",
        path="/",
        raw_query=query,
        headers=headers,
        body=body,
        secret_for=lambda ak: VOLC_SK if ak == VOLC_AK else None,
        region="cn-north-1",
        service="iam",
        now=now,
    )


def test_volc_signer_reproduces_vector_and_verifier_accepts_it() -> None:
    headers = _vector_headers()
    signed = _vector_request()
    assert signed["authorization"].endswith(
        "Signature=28eeabbbd726b87002e0fe58ad8c1c768e619b06e2646f35b6ad7ed029a6d8a7"
    )
    assert "SignedHeaders=content-type;host;x-content-sha256;x-date" in signed["authorization"]
    assert signed["x-content-sha256"] == headers["x-content-sha256"]
    assert _verify(signed) == VOLC_AK


def _expect(
    code: str,
    status: int,
    *,
    headers: dict[str, str] | None = None,
    query: str = VOLC_QUERY,
    body: bytes = b"",
    now: float | None = None,
) -> None:
    with pytest.raises(VolcAuthError) as info:
        _verify(headers or _vector_request(), query=query, body=body, now=now)
    assert (info.value.code, info.value.status) == (code, status)


@pytest.mark.parametrize("index", range(len(VOLC_QUERY)))
def test_volc_one_byte_query_change_fails(index: int) -> None:
    original = VOLC_QUERY[index]
    replacement = "Z" if original != "Z" else "Y"
    query = VOLC_QUERY[:index] + replacement + VOLC_QUERY[index + 1 :]
    _expect("SignatureDoesNotMatch", 403, query=query)


@pytest.mark.parametrize("name", ["content-type", "host", "x-date"])
def test_volc_one_byte_signed_header_change_fails(name: str) -> None:
    headers = _vector_request()
    value = headers[name]
    # Change the last digit/letter: for x-date that is one second off, within the allowed skew,
    # so only the signature can catch it.
    i = len(value) - 2 if name == "x-date" else len(value) - 1
    headers[name] = value[:i] + ("0" if value[i] != "0" else "1") + value[i + 1 :]
    _expect("SignatureDoesNotMatch", 403, headers=headers)


def test_volc_body_change_fails_even_when_hash_header_is_updated() -> None:
    headers = _vector_request()
    headers["x-content-sha256"] = sha256_hex(b"x")
    _expect("SignatureDoesNotMatch", 403, headers=headers, body=b"x")


def test_volc_body_change_with_stale_hash_header_fails() -> None:
    _expect("SignatureDoesNotMatch", 403, body=b"{}")


@settings(max_examples=40, deadline=None)
@given(st.binary(min_size=1, max_size=64), st.data())
def test_volc_any_one_byte_body_change_fails(body: bytes, data: st.DataObject) -> None:
    signed = sign_headers(
        access_key=VOLC_AK,
        secret=VOLC_SK,
        method="GET",
        host="h",
        path="/",
        raw_query=VOLC_QUERY,
        body=body,
        x_date=VOLC_DATE,
        region="cn-north-1",
        service="iam",
    )
    headers = {k.lower(): v for k, v in signed.items()} | {"host": "h"}
    assert _verify(headers, body=body) == VOLC_AK
    index = data.draw(st.integers(0, len(body) - 1))
    tampered = bytearray(body)
    tampered[index] ^= data.draw(st.integers(1, 255))
    with pytest.raises(VolcAuthError) as info:
        _verify(headers, body=bytes(tampered))
    assert info.value.code == "SignatureDoesNotMatch"


def test_volc_clock_skew_limit() -> None:
    sent = parse_x_date(VOLC_DATE)
    assert sent is not None
    assert _verify(_vector_request(), now=sent + MAX_CLOCK_SKEW_S) == VOLC_AK
    _expect("InvalidTimestamp", 403, now=sent + MAX_CLOCK_SKEW_S + 1)
    _expect("InvalidTimestamp", 403, now=sent - MAX_CLOCK_SKEW_S - 1)


def test_volc_missing_and_unknown_credentials() -> None:
    headers = _vector_request()
    del headers["authorization"]
    _expect("MissingAuthenticationToken", 401, headers=headers)
    headers = _vector_request()
    headers["authorization"] = headers["authorization"].replace(VOLC_AK, "AKLTnobody")
    _expect("InvalidAccessKey", 401, headers=headers)
    headers = _vector_request()
    headers["authorization"] = "HMAC-SHA256 garbage"
    _expect("SignatureDoesNotMatch", 403, headers=headers)


def test_volc_signature_must_cover_host() -> None:
    headers = _vector_request()
    headers["authorization"] = headers["authorization"].replace(
        "SignedHeaders=content-type;host;x-content-sha256;x-date",
        "SignedHeaders=content-type;x-content-sha256;x-date",
    )
    _expect("SignatureDoesNotMatch", 403, headers=headers)


def test_volc_wrong_region_in_scope_fails() -> None:
    headers = _vector_request()
    headers["authorization"] = headers["authorization"].replace("cn-north-1", "cn-beijing")
    _expect("SignatureDoesNotMatch", 403, headers=headers)


def test_canonical_query_sorts_and_encodes_rfc3986() -> None:
    assert canonical_query("b=2&a=x y&c=%7E*") == "a=x%20y&b=2&c=~%2A"
