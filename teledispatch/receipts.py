"""Delivery receipts: what a provider says happened *after* it accepted a message.

Three providers, three shapes, each parsed in its channel's folder: NXCloud pushes a DR per
message (:mod:`teledispatch.channels.nxcloud.receipts`), Volcengine pushes call records for a
voice task (:mod:`teledispatch.channels.volc.vms_receipts`), USpeedo has to be asked
(:mod:`teledispatch.channels.uspeedo.receipts`, polled by :mod:`teledispatch.worker.receipts`).
Each maps its shape to one provider-neutral :class:`Receipt`; the single SQL write that applies
one is :func:`teledispatch.db.messages.settle` — so the API, the poller and the tests all share
one definition of "final".

**First final wins.** A receipt only moves a message that is ``sent`` or ``unknown`` (an
ambiguous send the provider evidently got) to ``delivered``/``undelivered``, as one
compare-and-set ``UPDATE … WHERE status IN ('sent', 'unknown')``. Providers retry pushes
(Volcengine) and carriers send late or contradictory reports; a terminal state is never
rewritten, so duplicates and out-of-order receipts change nothing. A receipt that arrives
before the worker has recorded the send (the message is still ``sending``) is not applied:
NXCloud pushes once, so such a DR is lost (rare: the worker records the answer immediately).

Callback tokens are secrets: nothing here logs, returns or raises with one.

This module keeps the names the API and the tests import; the definitions live where named.
"""

from __future__ import annotations

from teledispatch.channels.base import PushedReceipt, Receipt
from teledispatch.channels.nxcloud.codes import DR_RESULT as NXCLOUD_RESULT
from teledispatch.channels.nxcloud.codes import DR_STATUS as NXCLOUD_STATUS
from teledispatch.channels.nxcloud.receipts import NxDr, nxcloud_token_ok, parse_nxcloud_dr
from teledispatch.channels.uspeedo.codes import RECEIPT_RESULT as USPEEDO_RESULT
from teledispatch.channels.uspeedo.receipts import uspeedo_receipt
from teledispatch.channels.volc.vms_receipts import (
    VolcRecord,
    parse_volc_records,
    volc_auth_code,
    volc_record,
    volc_verified,
)
from teledispatch.db.messages import settle
from teledispatch.statuses import SETTLEABLE

__all__ = [
    "NXCLOUD_RESULT",
    "NXCLOUD_STATUS",
    "SETTLEABLE",
    "USPEEDO_RESULT",
    "NxDr",
    "PushedReceipt",
    "Receipt",
    "VolcRecord",
    "nxcloud_token_ok",
    "parse_nxcloud_dr",
    "parse_volc_records",
    "settle",
    "uspeedo_receipt",
    "volc_auth_code",
    "volc_record",
    "volc_verified",
]
