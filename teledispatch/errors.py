"""The project's errors: one root an app can catch, and why a send failed.

Every error an app can see derives from :class:`Error` (exported as ``teledispatch.Error``),
so ``except teledispatch.Error`` catches them all. Each also keeps the built-in base it had
before the root existed, so existing ``except ValueError`` / ``LookupError`` code still works:

    Error
    ├── ConfigError(ValueError)              teledispatch.config
    ├── ValidationFailed(ValueError)         teledispatch.validation
    ├── IdempotencyConflict(ValueError)      teledispatch.producer.submit
    ├── JobNotFound(LookupError)             teledispatch.producer.lookup
    ├── ProducerClosed(RuntimeError)         teledispatch.producer.group_commit
    ├── StoreTimeout(TimeoutError)           teledispatch.producer.group_commit (Pending.result)
    └── DispatchError                        below

Every send failure the dispatcher handles is one of these. Two questions decide what happens to the
recipients of the batch, so each class answers them as attributes rather than by its name:

* ``retryable`` — may the same request be tried again later?
* ``may_have_been_sent`` — could the provider have acted on the request? If so a blind retry
  could deliver twice, so the recipients become ``unknown`` and are reconciled instead.

``throttled`` marks provider back-pressure: the account slows down and the attempt is not
counted against the recipient.

``unwell`` marks a failure that says the provider itself is down or failing (5xx, refused or
timed-out connections), not that it judged this request: a run of them opens the account's
circuit (``teledispatch.circuits``). Throttling is the provider working as designed: not unwell.

    DispatchError
    ├── TransportError                 no usable HTTP response
    │   ├── NotSentError               refused / connect timeout: provably never sent (retry)
    │   └── AmbiguousError             read timeout, dropped response: may have been sent
    └── ProviderError                  the provider answered
        ├── RetryableProviderError     5xx, InternalError, ServiceUnavailable, 215400
        │   └── ThrottledError         13008, HTTP 429, Volcengine flow control
        ├── DeferredError              held back for a while (NXCloud request-level 13007)
        ├── RejectedError              auth, balance, parameters: every recipient failed
        └── MalformedResponseError     an answer we cannot read (may have been sent)
    └── InternalError                  our own failure (a bug, Redis down): by its phase
"""

from __future__ import annotations


class Error(Exception):
    """The root of every error teledispatch raises to an app."""


class DispatchError(Error):
    retryable: bool = False
    may_have_been_sent: bool = False
    throttled: bool = False
    unwell: bool = False
    deferred: bool = False

    def __init__(self, message: str, *, code: str | None = None, retry_after: float | None = None):
        super().__init__(message)
        self.message = message
        self.code = code
        #: Seconds the provider asked us to wait (``Retry-After``), if it said.
        self.retry_after = retry_after

    def __str__(self) -> str:
        return f"[{self.code}] {self.message}" if self.code else self.message


class TransportError(DispatchError):
    unwell = True


class NotSentError(TransportError):
    retryable = True


class AmbiguousError(TransportError):
    may_have_been_sent = True


class ProviderError(DispatchError):
    pass


class RetryableProviderError(ProviderError):
    retryable = True
    unwell = True


class ThrottledError(RetryableProviderError):
    throttled = True
    unwell = False


class DeferredError(ProviderError):
    """The provider holds the request back for a while without judging its recipients (NXCloud
    13007, a per-number cap, answered for a whole request without saying which number): the
    batch waits ``retry_after`` as ``deferred``, spending no attempt, and is never failed."""

    retryable = True
    deferred = True


class RejectedError(ProviderError):
    pass


class MalformedResponseError(ProviderError):
    """The provider answered 2xx with something we cannot interpret; it may have sent."""

    may_have_been_sent = True


class InternalError(DispatchError):
    """A failure of our own (an adapter bug, a Redis or database error), not an answer.

    Whether the provider may have acted is a matter of *when* it happened, so the caller says:
    before the request may have started to be written nothing left, and the batch is retried
    like a refused connection (the attempt counts, so a persistent bug still ends ``failed``);
    from then on it may have been acted on, and is ambiguous.
    """

    def __init__(self, message: str, *, may_have_been_sent: bool, code: str = "internal"):
        super().__init__(message, code=code)
        self.may_have_been_sent = may_have_been_sent
        self.retryable = not may_have_been_sent
