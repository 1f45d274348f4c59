"""The contract every provider adapter keeps.

An adapter is pure: it turns claimed messages into the exact bytes of one HTTP request, and the
provider's answer (status, headers, body) into one outcome per message or a
:class:`~worker.errors.DispatchError` for the whole batch. It never performs I/O, reads the clock
only through the ``now`` argument, and never raises anything but ``DispatchError`` from
``parse_response`` whatever the body holds, so a worker cannot crash on a provider's reply.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

from teledispatch.config import AccountConfig

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
