"""Provider codes as data: each provider's ``codes.py`` maps its codes to an :class:`Outcome`,
and :func:`classify` turns the outcome into the ``DispatchError`` the dispatcher acts on.

Keeping the decision in tables means a new code is one line beside its documentation, and the
meaning of each kind is defined once, here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from teledispatch.errors import (
    DeferredError,
    DispatchError,
    MalformedResponseError,
    RejectedError,
    RetryableProviderError,
    ThrottledError,
)

#: ``throttled``: slow the account down, the attempt is not the recipient's fault.
#: ``retry``: the same request may succeed later.
#: ``reject``: the same request would be refused again; every recipient of it fails.
#: ``reject_account``: like ``reject``, but the account itself is refused (credentials).
#: ``defer_recipient``: only this recipient must wait (a per-number cap).
#: ``malformed``: an answer we cannot read; the batch may have been sent.
Kind = Literal["throttled", "retry", "reject", "reject_account", "defer_recipient", "malformed"]


@dataclass(frozen=True, slots=True)
class Outcome:
    kind: Kind
    #: Why, in words, used when the provider's answer has no text of its own.
    reason: str


#: How long a batch waits when a per-number cap is answered for the whole request: short next to
#: the cap's window (an hour at NXCloud), as most of the batch's numbers are not capped.
DEFER_REQUEST_S = 60.0


def error_for(
    outcome: Outcome, text: str, code: str, retry_after: float | None = None
) -> DispatchError:
    """The batch-wide error for ``outcome``; ``text`` (the provider's) wins over the reason."""
    message = text or outcome.reason
    if outcome.kind == "throttled":
        return ThrottledError(message, code=code, retry_after=retry_after)
    if outcome.kind == "retry":
        return RetryableProviderError(message, code=code, retry_after=retry_after)
    if outcome.kind == "malformed":
        return MalformedResponseError(message, code=code)
    if outcome.kind == "defer_recipient":
        # Answered for a whole request: which number is capped is not said, so the batch waits.
        return DeferredError(message, code=code, retry_after=retry_after or DEFER_REQUEST_S)
    # reject, reject_account.
    return RejectedError(message, code=code)


def classify(
    table: Mapping[str, Outcome],
    code: str,
    text: str,
    default: Outcome,
    retry_after: float | None = None,
) -> DispatchError:
    """The error for a provider ``code`` looked up in ``table`` (``default`` when absent)."""
    return error_for(table.get(code, default), text, code, retry_after)


def codes_of(table: Mapping[str, Outcome], *kinds: Kind) -> frozenset[str]:
    """The codes of ``table`` with one of ``kinds``, for callers that test membership."""
    return frozenset(code for code, outcome in table.items() if outcome.kind in kinds)
