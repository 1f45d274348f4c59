"""One row per channel: everything the rest of the system needs to know about it.

Adding a provider operation = a folder under ``teledispatch/channels/`` + a row here (and a
section in docs/providers.md, which ``tests/meta/test_registry.py`` checks).

Rules, adapters, pollers and parsers are named by dotted path and imported on first use, so
the producer (which needs only ``rules``) never imports an adapter module, and what needs only
the table's data (the database's partial index of polled channels, ``teledispatch status``)
imports no rules and no phone-number library.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

from teledispatch.channels.ids import (
    NXCLOUD_SMS,
    USPEEDO_SMS,
    VOLC_AXN_BIND,
    VOLC_VMS_APPEND,
    Channel,
)
from teledispatch.channels.nxcloud.codes import FAILOVER as NX_FAILOVER
from teledispatch.channels.uspeedo.codes import FAILOVER as US_FAILOVER

if TYPE_CHECKING:
    from teledispatch.channels.base import Adapter, ChannelRules, ReceiptParser, ReceiptPoller


@cache
def _load(path: str, **kwargs: Any) -> Any:
    """An instance of the class at ``"package.module:Class"``, made once per process (per
    set of keyword arguments)."""
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)(**kwargs)


@dataclass(frozen=True, slots=True)
class ChannelSpec:
    id: Channel
    #: Largest request the provider documents; an account's ``max_batch`` may only lower it.
    max_batch: int
    #: ``"module:Class"`` of the :class:`~teledispatch.channels.base.ChannelRules`; the class
    #: takes ``any_number_type`` (an account with ``allow_any_number_type``: any valid number).
    rules_path: str
    #: ``"module:Class"`` of the :class:`~teledispatch.channels.base.Adapter`.
    adapter_path: str
    #: The section of docs/providers.md that documents the operation.
    docs_anchor: str
    #: ``"module:Class"`` of a :class:`~teledispatch.channels.base.ReceiptPoller`, if receipts
    #: must be asked for.
    poller_path: str | None = None
    #: ``"module:Class"`` of a :class:`~teledispatch.channels.base.ReceiptParser`, if receipts
    #: are pushed to us.
    parser_path: str | None = None
    #: The field holding the SMS text we send, whose encoding and segments are stored per
    #: message; None when the provider holds the text (templates) or it is not an SMS.
    text_field: str | None = None
    #: Codes (request or item) of refusals a route moves a message on for: the account
    #: cannot carry it, another provider may (the table lives in the channel's ``codes.py``).
    failover_codes: frozenset[str] = frozenset()

    @property
    def rules(self) -> ChannelRules:
        rules: ChannelRules = _load(self.rules_path)
        return rules

    @property
    def relaxed_rules(self) -> ChannelRules:
        """The rules for an account with ``allow_any_number_type``: any valid number."""
        rules: ChannelRules = _load(self.rules_path, any_number_type=True)
        return rules

    @property
    def adapter(self) -> Adapter:
        adapter: Adapter = _load(self.adapter_path)
        return adapter

    @property
    def poller(self) -> ReceiptPoller | None:
        return None if self.poller_path is None else _load(self.poller_path)

    @property
    def parser(self) -> ReceiptParser | None:
        return None if self.parser_path is None else _load(self.parser_path)


_PKG = "teledispatch.channels"

CHANNELS: dict[str, ChannelSpec] = {
    spec.id: spec
    for spec in (
        ChannelSpec(
            NXCLOUD_SMS,
            max_batch=200,
            rules_path=f"{_PKG}.nxcloud.rules:NxcloudRules",
            adapter_path=f"{_PKG}.nxcloud.adapter:NxcloudAdapter",
            docs_anchor="nxcloud-batch-sms",
            parser_path=f"{_PKG}.nxcloud.receipts:NxcloudReceiptParser",
            text_field="content",
            failover_codes=NX_FAILOVER,
        ),
        ChannelSpec(
            USPEEDO_SMS,
            max_batch=1000,
            rules_path=f"{_PKG}.uspeedo.rules:UspeedoRules",
            adapter_path=f"{_PKG}.uspeedo.adapter:UspeedoAdapter",
            docs_anchor="uspeedo-batch-sms",
            poller_path=f"{_PKG}.uspeedo.receipts:UspeedoReceiptPoller",
            failover_codes=US_FAILOVER,
        ),
        ChannelSpec(
            VOLC_VMS_APPEND,
            max_batch=10_000,
            rules_path=f"{_PKG}.volc.vms_rules:VolcVmsRules",
            adapter_path=f"{_PKG}.volc.vms_adapter:VolcVmsAdapter",
            docs_anchor="volcengine-vms-batchappend",
            parser_path=f"{_PKG}.volc.vms_receipts:VolcVmsReceiptParser",
        ),
        ChannelSpec(
            VOLC_AXN_BIND,
            max_batch=1,
            rules_path=f"{_PKG}.volc.axn_rules:VolcAxnRules",
            adapter_path=f"{_PKG}.volc.axn_adapter:VolcAxnAdapter",
            docs_anchor="volcengine-bindaxn",
        ),
    )
}
#: Every channel id, in registry order (queues, workers).
CHANNEL_IDS: tuple[str, ...] = tuple(CHANNELS)


def spec_for(channel: str) -> ChannelSpec:
    try:
        return CHANNELS[channel]
    except KeyError:
        raise ValueError(f"unknown channel {channel!r}") from None


def rules_for(channel: str, *, any_number_type: bool = False) -> ChannelRules:
    try:
        spec = CHANNELS[channel]
    except KeyError:
        raise ValueError(f"channel {channel!r} has no validation rules") from None
    return spec.relaxed_rules if any_number_type else spec.rules


def adapter_for(channel: str) -> Adapter:
    try:
        spec = CHANNELS[channel]
    except KeyError:
        raise ValueError(f"no adapter for channel {channel!r}") from None
    return spec.adapter


def max_batch(channel: str) -> int:
    return CHANNELS[channel].max_batch


def polled_channels() -> tuple[str, ...]:
    """Channels whose receipts the worker polls (their ``sent`` messages are indexed for it)."""
    return tuple(c for c, spec in CHANNELS.items() if spec.poller_path is not None)


def text_field(channel: str) -> str | None:
    """The field whose SMS segments are counted for ``channel`` (None: nothing to count)."""
    spec = CHANNELS.get(channel)
    return None if spec is None else spec.text_field


def failover_codes(channel: str) -> frozenset[str]:
    """Refusal codes a route moves a message on for (empty: none, or an unknown channel)."""
    spec = CHANNELS.get(channel)
    return frozenset() if spec is None else spec.failover_codes
