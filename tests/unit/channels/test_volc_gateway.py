"""Volcengine signer: the published vector, and agreement with a separately written signer."""

from __future__ import annotations

import hashlib
import hmac
import string

from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from teledispatch.channels.volc import gateway as volc_sign
from teledispatch.channels.volc.gateway import sha256_hex, sign, signed_headers, x_date
from teledispatch.config import AccountConfig

AK = "AKLTMjI2ODVlYzI3ZGY1NGU4ZjhjYWRjMTlmNTM5OTZkYzE"
SK = "TnpCak5XWXpZV1U0WkRaaE5ERmxaR0ZpTmpjeVkyUXlZek0wTWpJMU1qWQ=="
VECTOR_URL = "https://iam.volcengineapi.com/?Action=ListUsers&Limit=10&Offset=0&Version=2018-01-01"
VECTOR_HEADERS = {
    "Content-Type": "application/x-www-form-urlencoded; charset=utf-8",
    "Host": "iam.volcengineapi.com",
    "X-Date": "20201230T081805Z",
    "X-Content-Sha256": hashlib.sha256(b"").hexdigest(),
}


def _vector() -> volc_sign.Signature:
    return sign(
        "GET", VECTOR_URL, VECTOR_HEADERS, b"",
        access_key=AK, secret=SK, region="cn-north-1", service="iam",
    )  # fmt: skip


def test_published_vector_canonical_request_hash() -> None:
    canonical = _vector().canonical_request
    assert (
        hashlib.sha256(canonical.encode()).hexdigest()
        == "3a4d4dee07c3308a52da01bc12d7a83c3705bfa543f51648f46de880bb2a7447"
    )


def test_published_vector_signature_and_authorization() -> None:
    sig = _vector()
    assert sig.signature == "28eeabbbd726b87002e0fe58ad8c1c768e619b06e2646f35b6ad7ed029a6d8a7"
    assert sig.signed_headers == "content-type;host;x-content-sha256;x-date"
    assert sig.authorization == (
        f"HMAC-SHA256 Credential={AK}/20201230/cn-north-1/iam/request, "
        "SignedHeaders=content-type;host;x-content-sha256;x-date, "
        "Signature=28eeabbbd726b87002e0fe58ad8c1c768e619b06e2646f35b6ad7ed029a6d8a7"
    )


def test_x_date_comes_from_now_in_utc() -> None:
    assert x_date(1609316285.9) == "20201230T081805Z"


def _account(**kw: object) -> AccountConfig:
    base = {
        "name": "v",
        "channel": "volc.vms.append",
        "base_url": "http://127.0.0.1:8123",
        "access_key": "AK",
        "secret": SecretStr("top-secret"),
    }
    base.update(kw)
    return AccountConfig.model_validate(base)


def test_signed_headers_use_account_region_service_and_host_with_port() -> None:
    account = _account(region="cn-beijing", service="vms")
    url = "http://127.0.0.1:8123/?Action=BatchAppend&Version=2022-01-01"
    headers = signed_headers(account, "POST", url, "application/json", b"{}", 1609316285.0)
    assert set(headers) == {"Host", "Content-Type", "X-Date", "X-Content-Sha256", "Authorization"}
    assert headers["Host"] == "127.0.0.1:8123"
    assert headers["X-Date"] == "20201230T081805Z"
    assert headers["X-Content-Sha256"] == hashlib.sha256(b"{}").hexdigest()
    assert "Credential=AK/20201230/cn-beijing/vms/request" in headers["Authorization"]
    assert "top-secret" not in repr(headers)
    expected = _independent_signature(
        "POST", "/", {"Action": "BatchAppend", "Version": "2022-01-01"},
        {k: v for k, v in headers.items() if k != "Authorization"},
        b"{}", "top-secret", "cn-beijing", "vms",
    )  # fmt: skip
    assert headers["Authorization"].endswith("Signature=" + expected)


# --- an independent signer, written from docs/providers.md#volcengine-signing, not the module ---

_SAFE = set((string.ascii_letters + string.digits + "-_.~").encode())


def _pct(value: str) -> str:
    out = []
    for byte in value.encode("utf-8"):
        out.append(chr(byte) if byte in _SAFE else f"%{byte:02X}")
    return "".join(out)


def _independent_signature(
    method: str,
    path: str,
    query: dict[str, str],
    headers: dict[str, str],
    body: bytes,
    secret: str,
    region: str,
    service: str,
) -> str:
    keep = {}
    for name, value in headers.items():
        low = name.lower()
        if low in ("host", "content-type") or low[:2] == "x-":
            keep[low] = value.strip()
    order = sorted(keep)
    qs = "&".join(_pct(k) + "=" + _pct(query[k]) for k in sorted(query))
    block = "".join(n + ":" + keep[n] + "\n" for n in order)
    creq = (
        method + "\n" + path + "\n" + qs + "\n" + block + "\n" + ";".join(order) + "\n"
        + hashlib.sha256(body).hexdigest()
    )  # fmt: skip
    day = keep["x-date"][0:8]
    sts = "HMAC-SHA256\n{}\n{}/{}/{}/request\n{}".format(
        keep["x-date"], day, region, service, hashlib.sha256(creq.encode()).hexdigest()
    )

    def mac(key: bytes, msg: str) -> bytes:
        return hmac.digest(key, msg.encode(), "sha256")

    k = mac(mac(mac(mac(secret.encode(), day), region), service), "request")
    return hmac.digest(k, sts.encode(), "sha256").hex()


def test_independent_signer_reproduces_vector() -> None:
    query = {"Action": "ListUsers", "Limit": "10", "Offset": "0", "Version": "2018-01-01"}
    assert (
        _independent_signature("GET", "/", query, VECTOR_HEADERS, b"", SK, "cn-north-1", "iam")
        == "28eeabbbd726b87002e0fe58ad8c1c768e619b06e2646f35b6ad7ed029a6d8a7"
    )


_text = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=12)
_keys = st.text(string.ascii_letters + string.digits + " -_.~/&=+%é", min_size=1, max_size=8)
_requests = st.fixed_dictionaries(
    {
        "method": st.sampled_from(["GET", "POST"]),
        "query": st.dictionaries(_keys, _text, max_size=5),
        "body": st.binary(max_size=200),
        "ctype": st.sampled_from(["application/json", "application/x-www-form-urlencoded"]),
        "stamp": st.integers(0, 2_000_000_000),
        "secret": st.text(string.printable, min_size=1, max_size=40),
        "region": st.sampled_from(["cn-north-1", "cn-beijing", "ap-southeast-1"]),
        "extra": st.sampled_from([{}, {"X-Security-Token": "tok en"}]),
    }
)


def _module_and_independent(r: dict[str, object]) -> tuple[str, str]:
    from urllib.parse import urlencode

    query = r["query"]
    assert isinstance(query, dict)
    body = r["body"]
    assert isinstance(body, bytes)
    stamp = r["stamp"]
    assert isinstance(stamp, int)
    extra = r["extra"]
    assert isinstance(extra, dict)
    url = "https://cloud-vms.volcengineapi.com/?" + urlencode(query)
    headers = {
        "Host": "cloud-vms.volcengineapi.com",
        "Content-Type": str(r["ctype"]),
        "X-Date": x_date(stamp),
        "X-Content-Sha256": sha256_hex(body),
        **extra,
    }
    ours = sign(
        str(r["method"]), url, headers, body,
        access_key="AK", secret=str(r["secret"]), region=str(r["region"]), service="vms",
    ).signature  # fmt: skip
    theirs = _independent_signature(
        str(r["method"]), "/", query, headers, body, str(r["secret"]), str(r["region"]), "vms"
    )
    return ours, theirs


@settings(max_examples=300, deadline=None)
@given(_requests)
def test_module_and_independent_signer_agree(r: dict[str, object]) -> None:
    ours, theirs = _module_and_independent(r)
    assert ours == theirs


@settings(max_examples=150, deadline=None)
@given(_requests, st.data())
def test_one_changed_byte_changes_the_signature(r: dict[str, object], data: st.DataObject) -> None:
    before, _ = _module_and_independent(r)
    what = data.draw(st.sampled_from(["body", "query", "header"]))
    changed = dict(r)
    if what == "body":
        body = r["body"]
        assert isinstance(body, bytes)
        if body:
            i = data.draw(st.integers(0, len(body) - 1))
            flipped = bytes([body[i] ^ data.draw(st.integers(1, 255))])
            changed["body"] = body[:i] + flipped + body[i + 1 :]
        else:
            changed["body"] = b"x"
    elif what == "query":
        query = dict(r["query"])  # type: ignore[call-overload]
        key = data.draw(st.sampled_from(sorted(query))) if query else "Action"
        query[key] = query.get(key, "") + "1"
        changed["query"] = query
    else:
        changed["ctype"] = str(r["ctype"]) + "x"
    after, _ = _module_and_independent(changed)
    assert after != before


def test_changed_signed_headers_change_signature() -> None:
    base = _vector().signature
    for name in VECTOR_HEADERS:
        headers = dict(VECTOR_HEADERS)
        headers[name] = headers[name][:-1] + ("0" if headers[name][-1] != "0" else "1")
        other = sign(
            "GET", VECTOR_URL, headers, b"",
            access_key=AK, secret=SK, region="cn-north-1", service="iam",
        )  # fmt: skip
        assert other.signature != base, name


def test_body_hash_is_computed_from_body_not_header() -> None:
    headers = dict(VECTOR_HEADERS)
    a = sign("POST", VECTOR_URL, headers, b"a", access_key=AK, secret=SK, region="r", service="s")
    b = sign("POST", VECTOR_URL, headers, b"b", access_key=AK, secret=SK, region="r", service="s")
    assert a.signature != b.signature
