"""The contracts a channel keeps, and the values that cross them.

A channel is one provider operation. Its folder under ``teledispatch/channels/`` provides:

* :class:`ChannelRules` — validation at enqueue time (the producer side; no I/O, no adapter);
* :class:`Adapter` — pure: claimed messages → the exact bytes of one HTTP request, and the
  provider's answer (status, headers, body) → one outcome per message or a
  :class:`~teledispatch.errors.DispatchError` for the whole batch. It never performs I/O, reads
  the clock only through ``now``, and never raises anything but ``DispatchError`` from
  ``parse_response`` whatever the body holds, so a worker cannot crash on a provider's reply;
* optionally :class:`StatusQuery` (reconciliation), :class:`ReceiptPoller` (receipts we must
  ask for) or :class:`ReceiptParser` (receipts the provider pushes to us).

The registry (:mod:`teledispatch.channels.registry`) has one row per channel naming these.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

if TYPE_CHECKING:  # annotations only: a reader of receipts needs no phone-number library
    from teledispatch.config import AccountConfig
    from teledispatch.validation import Problem

#: ``retry``: the provider refused the item for now (not sent); ``unknown``: it may have gone out.
ItemStatus = Literal["sent", "failed", "deferred", "retry", "unknown"]


@dataclass(frozen=True, slots=True)
class OutMessage:
    """One recipient as an adapter sees it."""

    #: Our id for the message; 10–50 chars of ``[0-9a-zA-Z-]`` (NXCloud ``sysMessageId``).
    id: str
    #: E.164 with the leading ``+`` (``"+8615088888888"``); adapters format it per provider.
    phone: str
    #: Per-recipient fields merged over the job's defaults, snake_case of the provider's names.
    fields: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class HttpRequest:
    method: str
    url: str
    headers: Mapping[str, str]
    body: bytes


@dataclass(frozen=True, slots=True)
class ItemOutcome:
    """What the provider said about one message of an answered request."""

    message_id: str
    status: ItemStatus
    provider_id: str | None = None
    error_code: str | None = None
    error_text: str | None = None
    #: For ``deferred``: seconds until the recipient may be tried again.
    retry_in: float | None = None


@dataclass(frozen=True, slots=True)
class BatchResult:
    items: list[ItemOutcome] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Receipt:
    """One final delivery outcome, provider-neutral."""

    delivered: bool
    #: The provider's own code (``"5/UNDELIV"``, ``"Fail/UNDELIV"``), kept for lookups.
    code: str
    #: Readable reason for an operator; ``""`` when delivered.
    text: str

    @property
    def status(self) -> str:
        # The message statuses of the same names (teledispatch.db.tables); spelled here so the
        # channel contracts do not import the database layer.
        return "delivered" if self.delivered else "undelivered"


@dataclass(frozen=True, slots=True)
class PushedReceipt:
    """A pushed receipt and the message it names: by our id or by the provider's id."""

    receipt: Receipt
    message_id: str | None = None
    provider_id: str | None = None


class ChannelRules(Protocol):
    """What a channel's validation rules look like to the producer."""

    channel: str
    #: Fields a recipient (or the job's defaults) may carry, snake_case of the provider's names.
    fields: frozenset[str]

    def validate(
        self, index: int, fields: dict[str, Any], problems: list[Problem], now: float
    ) -> dict[str, Any] | None:
        """Normalised fields (``phone`` in E.164 with ``+``), or None when a problem was added.

        ``fields`` is the recipient merged over the job's defaults. The result is what the
        worker's adapter receives, so it keeps only fields the adapter understands.
        """
        ...

    def group_key(self, fields: dict[str, Any]) -> str:
        """Messages with different keys never share a request (VMS ``TaskOpenId``); else ""."""
        ...

    def dedupe_key(self, fields: dict[str, Any]) -> str:
        """Two recipients of one job with the same key are the same message sent twice."""
        ...


class Adapter(Protocol):
    channel: str

    def build_request(
        self, account: AccountConfig, messages: Sequence[OutMessage], now: float
    ) -> HttpRequest:
        """The exact request for ``messages`` (already within the batch size), signed."""
        ...

    def parse_response(
        self, messages: Sequence[OutMessage], status: int, headers: Mapping[str, str], body: bytes
    ) -> BatchResult:
        """One outcome per message, or raise a ``DispatchError`` that covers the whole batch."""
        ...


@runtime_checkable
class StatusQuery(Protocol):
    """Adapters whose provider can say whether it received one message (reconciliation)."""

    def status_query(
        self, account: AccountConfig, message: OutMessage, sent_at: float, now: float
    ) -> HttpRequest | None: ...

    def parse_status(
        self, message: OutMessage, status: int, headers: Mapping[str, str], body: bytes
    ) -> ItemOutcome:
        """``sent``/``failed`` if the provider knows it, ``retry`` if it provably never got it,
        ``unknown`` if the answer does not tell."""
        ...


class ReceiptPoller(Protocol):
    """A channel whose receipts must be asked for (no webhook); the worker polls it.

    A message's ``provider_id`` names one or more *query keys* (USpeedo ``SessionNo``); one
    request asks about up to :attr:`max_keys` of them, and the answer is keyed by
    ``(query key, recipient)`` where the recipient is the phone as :meth:`recipient` spells it.
    """

    max_keys: int

    def query_keys(self, provider_id: str) -> list[str]:
        """The keys to ask about for a message with this ``provider_id``."""
        ...

    def recipient(self, phone: str) -> str:
        """Our stored E.164 phone as the answer spells it."""
        ...

    def build_poll(self, account: AccountConfig, keys: Sequence[str]) -> HttpRequest:
        """One poll request for 1..:attr:`max_keys` keys."""
        ...

    def parse_poll(self, status: int, body: bytes) -> dict[tuple[str, str], Receipt | None]:
        """``(key, recipient)`` → the final receipt, or None while the carrier has not answered.

        Raises ``DispatchError`` when the answer as a whole is unusable (ask again later)."""
        ...


class ReceiptParser(Protocol):
    """A channel whose provider pushes receipts to our API."""

    def parse_push(self, fields: Mapping[str, str], body: bytes) -> list[PushedReceipt]:
        """Every usable receipt in one push; ``fields`` are the form/query fields, ``body``
        the raw body. Never raises: an unreadable push settles nothing."""
        ...
