"""The HTTP envelope checks every JSON provider answer goes through before its own codes.

HTTP 429 is back-pressure and 5xx a failure of the provider, whatever the body says; a body that
is not a JSON object is unreadable (on a 2xx: it may have been acted on) or a refusal (4xx).
NXCloud and USpeedo share these rules; Volcengine reads its own envelope
(:mod:`teledispatch.channels.volc.gateway`).
"""

from __future__ import annotations

import json
from collections.abc import Collection
from typing import Any

from teledispatch.errors import (
    MalformedResponseError,
    RejectedError,
    RetryableProviderError,
    ThrottledError,
)


def load_json(body: bytes) -> Any:
    """The decoded body, or None: never raises, whatever the bytes (deep nesting included)."""
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        return None


def check_status(provider: str, status: int, auth_statuses: Collection[int] = ()) -> None:
    """Raise for the statuses that decide the outcome before the body is read."""
    if status == 429:
        raise ThrottledError(f"HTTP 429 from {provider}", code="429")
    if status >= 500:
        raise RetryableProviderError(f"HTTP {status} from {provider}", code=str(status))
    if status in auth_statuses:
        # The message names the cause but never the credentials that were refused.
        raise RejectedError(
            f"{provider} refused the account's credentials (HTTP {status})", code=str(status)
        )


def json_object(
    provider: str, status: int, body: bytes, auth_statuses: Collection[int] = ()
) -> dict[str, Any]:
    """The answer's JSON object after :func:`check_status`, or the batch-wide error."""
    check_status(provider, status, auth_statuses)
    doc = load_json(body)
    if isinstance(doc, dict):
        return doc
    if 200 <= status < 300:
        raise MalformedResponseError(f"{provider} answered HTTP {status} with no JSON object")
    raise RejectedError(f"HTTP {status} from {provider}", code=str(status))
