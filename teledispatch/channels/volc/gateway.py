"""Volcengine OpenAPI gateway: request signing and the common response envelope
(docs/providers.md#volcengine-signing, docs/providers.md#volcengine-errors).

Both VMS channels (``volc.vms.append``, ``volc.axn.bind``) talk to the same gateway, so the
signature and the reading of ``ResponseMetadata.Error`` live here once. Signing is pure: the
clock enters only as the ``now`` argument, and the signature covers the exact body bytes the
caller will send — re-serialising the body after signing would break it, so callers sign last.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

from teledispatch.channels.codes import Outcome, codes_of, error_for
from teledispatch.channels.envelope import load_json
from teledispatch.channels.volc.codes import CODES, DEFAULT
from teledispatch.config import AccountConfig
from teledispatch.errors import DispatchError, MalformedResponseError

ALGORITHM = "HMAC-SHA256"
#: Characters left as they are by RFC 3986 percent-encoding (besides letters and digits).
_UNRESERVED = "-_.~"

#: Account-level refusals: every request of the account fails until an operator acts.
AUTH_CODES = codes_of(CODES, "reject_account")


@dataclass(frozen=True, slots=True)
class Signature:
    """Every intermediate of a signature, so a test can compare each step with the docs."""

    canonical_request: str
    string_to_sign: str
    signed_headers: str
    signature: str
    authorization: str


def x_date(now: float) -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _encode(text: str) -> str:
    return quote(text, safe=_UNRESERVED)


def canonical_query(query: str) -> str:
    """Keys and values RFC 3986-encoded, sorted: the gateway rebuilds the same string."""
    pairs = parse_qsl(query, keep_blank_values=True)
    return "&".join(f"{_encode(k)}={_encode(v)}" for k, v in sorted(pairs))


def _is_signed(name: str) -> bool:
    lower = name.lower()
    return lower in ("content-type", "host") or lower.startswith("x-")


def signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    key = secret.encode("utf-8")
    for part in (date, region, service, "request"):
        key = hmac.new(key, part.encode("utf-8"), hashlib.sha256).digest()
    return key


def sign(
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    access_key: str,
    secret: str,
    region: str,
    service: str,
) -> Signature:
    """Sign ``headers`` (which must hold ``X-Date`` and ``Host``) over ``body`` as sent.

    ``X-Content-Sha256`` is signed when present in ``headers``; the body hash in the canonical
    request is always computed from ``body`` itself, so a stale header cannot hide a changed body.
    """
    parts = urlsplit(url)
    lowered = {k.lower(): v.strip() for k, v in headers.items() if _is_signed(k)}
    names = sorted(lowered)
    signed_headers = ";".join(names)
    canonical = "\n".join(
        [
            method.upper(),
            quote(parts.path or "/", safe="/" + _UNRESERVED),
            canonical_query(parts.query),
            "".join(f"{name}:{lowered[name]}\n" for name in names),
            signed_headers,
            sha256_hex(body),
        ]
    )
    stamp = lowered["x-date"]
    date = stamp[:8]
    scope = f"{date}/{region}/{service}/request"
    to_sign = "\n".join([ALGORITHM, stamp, scope, sha256_hex(canonical.encode("utf-8"))])
    signature = hmac.new(
        signing_key(secret, date, region, service), to_sign.encode("utf-8"), hashlib.sha256
    ).hexdigest()
    authorization = (
        f"{ALGORITHM} Credential={access_key}/{scope}, "
        f"SignedHeaders={signed_headers}, Signature={signature}"
    )
    return Signature(canonical, to_sign, signed_headers, signature, authorization)


def signed_headers(
    account: AccountConfig, method: str, url: str, content_type: str, body: bytes, now: float
) -> dict[str, str]:
    """The five headers the gateway needs; ``Host`` is the one the HTTP client will send."""
    headers = {
        "Host": urlsplit(url).netloc,
        "Content-Type": content_type,
        "X-Date": x_date(now),
        "X-Content-Sha256": sha256_hex(body),
    }
    signature = sign(
        method,
        url,
        headers,
        body,
        access_key=account.access_key,
        secret=account.secret.get_secret_value(),
        region=account.region,
        service=account.service,
    )
    headers["Authorization"] = signature.authorization
    return headers


def text(value: Any, limit: int = 500) -> str:
    """A provider string for an error text; anything else (lists, dicts) is dropped."""
    if isinstance(value, str):
        return value[:limit]
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)[:limit]
    return ""


@dataclass(frozen=True, slots=True)
class ApiError:
    code: str
    message: str


def read_error(doc: Any) -> ApiError | None:
    """``ResponseMetadata.Error`` when present (with a string code), else None."""
    if not isinstance(doc, dict):
        return None
    meta = doc.get("ResponseMetadata")
    if not isinstance(meta, dict):
        return None
    error = meta.get("Error")
    if not isinstance(error, dict):
        return None
    code = error.get("Code")
    if not isinstance(code, str) or not code:
        return None
    return ApiError(code[:100], text(error.get("Message")))


def classify(error: ApiError | None, status: int, retry_after: float | None) -> DispatchError:
    """The batch-wide error for a gateway refusal (see :mod:`.codes` for the reasons).

    HTTP 429 is back-pressure and 5xx a gateway failure whatever the code says; a known code
    decides otherwise, and an unknown one is a refusal (a 2xx without a ``Result``: unreadable).
    """
    if error is None:
        label, message = str(status), f"HTTP {status} from Volcengine"
    else:
        label, message = error.code, error.message or error.code
    outcome = CODES.get(label, DEFAULT)
    if status == 429 and outcome.kind != "throttled":
        outcome = Outcome("throttled", "HTTP 429")
    elif status >= 500 and outcome.kind not in ("throttled", "retry"):
        outcome = Outcome("retry", "HTTP 5xx")
    elif error is None and 200 <= status < 300:
        return MalformedResponseError(f"Volcengine answered HTTP {status} without a Result")
    return error_for(outcome, message, label, retry_after)


def retry_after(headers: Mapping[str, str]) -> float | None:
    for name, value in headers.items():
        if name.lower() == "retry-after":
            try:
                seconds = float(value)
            except ValueError:
                return None
            return seconds if 0 <= seconds < 86400 else None
    return None


def result_or_raise(status: int, headers: Mapping[str, str], body: bytes) -> dict[str, Any]:
    """The ``Result`` object of a successful answer, or the ``DispatchError`` for the batch."""
    doc = load_json(body)
    error = read_error(doc)
    if error is not None or not 200 <= status < 300:
        raise classify(error, status, retry_after(headers))
    result = doc.get("Result") if isinstance(doc, dict) else None
    if not isinstance(result, dict):
        raise MalformedResponseError(f"Volcengine answered HTTP {status} without a Result object")
    return result
