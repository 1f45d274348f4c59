"""Volcengine gateway ``ResponseMetadata.Error.Code`` → what the dispatcher does
(docs/providers.md#volcengine-errors). Shared by both VMS channels."""

from __future__ import annotations

from teledispatch.channels.codes import Outcome

_RETRY = Outcome("retry", "the gateway failed or is overloaded; the same request may succeed later")
_THROTTLED = Outcome("throttled", "flow control: slow the account down")
_ACCOUNT = Outcome("reject_account", "the account is refused until an operator acts")

CODES: dict[str, Outcome] = {
    "InternalError": _RETRY,
    "ServiceUnavailable": _RETRY,
    "InternalServiceError": _RETRY,
    "InternalServiceTimeout": _RETRY,
    "ServiceUnavailableTemp": _RETRY,
    "FlowLimitExceeded": _THROTTLED,
    "AccountFlowLimitExceeded": _THROTTLED,
    "RequestLimitExceeded": _THROTTLED,
    "Throttling": _THROTTLED,
    # Documented as a 400, but it says "too many at once", not "this request is wrong": it
    # succeeds when retried later.
    "ExceedMaxConcurrency": _THROTTLED,
    # Our clock disagrees with the gateway's. The gateway refused the request before acting on
    # it, so a retry can never deliver twice, and a clock that was stepped (VM resume, NTP
    # correction) heals by itself: retrying (bounded by ``max_attempts``) loses nothing,
    # whereas rejecting would fail every recipient of the batch for good.
    "InvalidTimestamp": Outcome("retry", "clock skew between us and the gateway"),
    "SignatureDoesNotMatch": _ACCOUNT,
    "InvalidAccessKey": _ACCOUNT,
    "InvalidCredential": _ACCOUNT,
    "InvalidAuthorization": _ACCOUNT,
    "AccessDenied": _ACCOUNT,
    "MissingAuthenticationToken": _ACCOUNT,
    "InvalidSecretToken": _ACCOUNT,
}
#: Any other code (``InvalidParameter``, ``TaskNotFound``, ``ConflictWithExisting``…): the
#: same request would be refused again.
DEFAULT = Outcome("reject", "rejected")
