"""Volcengine "HMAC-SHA256" request signing, verified independently of the worker.

The scheme is SigV4-like (docs/providers.md#volcengine-signing). Verification recomputes
the body hash from the bytes actually received rather than trusting ``X-Content-Sha256``, so a
request altered in one byte of body, query or any signed header is rejected.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import parse_qsl, quote

ALGORITHM = "HMAC-SHA256"
#: Largest accepted difference between ``X-Date`` and the simulator's clock, in seconds.
MAX_CLOCK_SKEW_S = 300.0
#: Headers a signature must cover, or parts of the request could be changed unnoticed.
REQUIRED_SIGNED = frozenset({"host", "x-date"})

_AUTH = re.compile(
    r"^HMAC-SHA256\s+Credential=(?P<cred>[^,\s]+)\s*,\s*SignedHeaders=(?P<signed>[^,\s]+)"
    r"\s*,\s*Signature=(?P<sig>[0-9a-fA-F]+)\s*$"
)
_X_DATE = re.compile(r"^\d{8}T\d{6}Z$")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def _encode(text: str) -> str:
    return quote(text, safe="-_.~")


def canonical_query(raw_query: str) -> str:
    """RFC 3986 encoding (only ``-_.~`` kept), sorted by key then value, joined by ``&``."""
    pairs = parse_qsl(raw_query, keep_blank_values=True)
    return "&".join(f"{k}={v}" for k, v in sorted((_encode(k), _encode(v)) for k, v in pairs))


def canonical_request(
    method: str,
    path: str,
    raw_query: str,
    headers: Mapping[str, str],
    signed_headers: Sequence[str],
    body_hash: str,
) -> str:
    """``headers`` must be keyed by lowercase name; ``signed_headers`` sorted and lowercase."""
    uri = quote(path or "/", safe="/-_.~")
    header_block = "".join(f"{name}:{headers.get(name, '').strip()}\n" for name in signed_headers)
    return "\n".join(
        [
            method.upper(),
            uri,
            canonical_query(raw_query),
            header_block,
            ";".join(signed_headers),
            body_hash,
        ]
    )


def signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    k_date = _hmac(secret.encode(), date)
    k_region = _hmac(k_date, region)
    k_service = _hmac(k_region, service)
    return _hmac(k_service, "request")


def string_to_sign(x_date: str, region: str, service: str, canonical: str) -> str:
    scope = f"{x_date[:8]}/{region}/{service}/request"
    return f"{ALGORITHM}\n{x_date}\n{scope}\n{sha256_hex(canonical.encode())}"


def compute_signature(secret: str, x_date: str, region: str, service: str, canonical: str) -> str:
    key = signing_key(secret, x_date[:8], region, service)
    return hmac.new(
        key, string_to_sign(x_date, region, service, canonical).encode(), hashlib.sha256
    ).hexdigest()


@dataclass(frozen=True, slots=True)
class Authorization:
    access_key: str
    date: str
    region: str
    service: str
    signed_headers: tuple[str, ...]
    signature: str


def parse_authorization(value: str) -> Authorization | None:
    m = _AUTH.match(value.strip())
    if not m:
        return None
    cred = m.group("cred").split("/")
    if len(cred) != 5 or cred[4] != "request":
        return None
    signed = tuple(m.group("signed").lower().split(";"))
    return Authorization(cred[0], cred[1], cred[2], cred[3], signed, m.group("sig").lower())


class VolcAuthError(Exception):
    """Why a request was refused before its action ran; maps to a gateway error body."""

    def __init__(self, code: str, status: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.status = status
        self.message = message


def _mismatch(why: str) -> VolcAuthError:
    return VolcAuthError(
        "SignatureDoesNotMatch",
        403,
        "The request signature we calculated does not match the signature you provided. " + why,
    )


def parse_x_date(x_date: str) -> float | None:
    if not _X_DATE.match(x_date):
        return None
    try:
        return datetime.strptime(x_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC).timestamp()
    except ValueError:
        return None


def verify_request(
    *,
    method: str,
    path: str,
    raw_query: str,
    headers: Mapping[str, str],
    body: bytes,
    secret_for: Callable[[str], str | None],
    region: str,
    service: str,
    now: float,
    max_skew_s: float = MAX_CLOCK_SKEW_S,
) -> str:
    """Return the caller's access key, or raise :class:`VolcAuthError`.

    ``headers`` is keyed by lowercase name (repeated headers already joined with ``,``).
    """
    raw_auth = headers.get("authorization")
    if not raw_auth:
        raise VolcAuthError(
            "MissingAuthenticationToken", 401, "Request is missing Authentication Token."
        )
    auth = parse_authorization(raw_auth)
    if auth is None:
        raise _mismatch("The Authorization header is malformed.")
    secret = secret_for(auth.access_key)
    if secret is None:
        raise VolcAuthError(
            "InvalidAccessKey", 401, "The accesskey included in the request is invalid."
        )
    x_date = headers.get("x-date", "")
    sent_at = parse_x_date(x_date)
    if sent_at is None or abs(now - sent_at) > max_skew_s:
        raise VolcAuthError("InvalidTimestamp", 403, "The signature of the request is expired.")
    if auth.date != x_date[:8] or auth.region != region or auth.service != service:
        raise _mismatch("The credential scope does not match the request.")
    signed = auth.signed_headers
    if list(signed) != sorted(set(signed)) or not REQUIRED_SIGNED.issubset(signed):
        raise _mismatch("SignedHeaders must be sorted and include host and x-date.")
    if any(name not in headers for name in signed):
        raise _mismatch("A signed header is missing from the request.")
    body_hash = sha256_hex(body)
    claimed = headers.get("x-content-sha256")
    if claimed is not None and ("x-content-sha256" not in signed or claimed.strip() != body_hash):
        raise _mismatch("X-Content-Sha256 does not match the body.")
    canonical = canonical_request(method, path, raw_query, headers, signed, body_hash)
    expected = compute_signature(secret, x_date, region, service, canonical)
    if not hmac.compare_digest(expected, auth.signature):
        raise _mismatch("Check your Secret Access Key and signing method.")
    return auth.access_key


def sign_headers(
    *,
    access_key: str,
    secret: str,
    method: str,
    host: str,
    path: str,
    raw_query: str,
    body: bytes,
    x_date: str,
    region: str,
    service: str,
    content_type: str | None = None,
) -> dict[str, str]:
    """Headers for a signed request; used by the simulator's own tests and examples."""
    headers = {"host": host, "x-date": x_date, "x-content-sha256": sha256_hex(body)}
    if content_type is not None:
        headers["content-type"] = content_type
    signed = sorted(headers)
    canonical = canonical_request(
        method, path, raw_query, headers, signed, headers["x-content-sha256"]
    )
    signature = compute_signature(secret, x_date, region, service, canonical)
    out = {
        "X-Date": x_date,
        "X-Content-Sha256": headers["x-content-sha256"],
        "Authorization": (
            f"{ALGORITHM} Credential={access_key}/{x_date[:8]}/{region}/{service}/request, "
            f"SignedHeaders={';'.join(signed)}, Signature={signature}"
        ),
    }
    if content_type is not None:
        out["Content-Type"] = content_type
    return out
