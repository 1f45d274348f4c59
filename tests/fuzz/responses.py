"""Door 1: provider answers. For any status, headers and body, each adapter's
``parse_response`` (and NXCloud's ``parse_status``) returns a result or raises a
``DispatchError``: a provider's reply of any shape never crashes a worker.

Input layout (see :class:`tests.fuzz.reader.Reader`): adapter, status, headers, how many
messages, then the body, generated as JSON or taken verbatim.
"""

from __future__ import annotations

import contextlib
from typing import Any

from teledispatch.channels.base import Adapter, BatchResult, ItemOutcome, OutMessage
from teledispatch.channels.ids import NXCLOUD_SMS, USPEEDO_SMS, VOLC_AXN_BIND, VOLC_VMS_APPEND
from teledispatch.channels.nxcloud.adapter import NxcloudAdapter
from teledispatch.channels.registry import adapter_for
from teledispatch.errors import DispatchError
from tests.fuzz.reader import Reader, json_body

CHANNELS = (NXCLOUD_SMS, USPEEDO_SMS, VOLC_VMS_APPEND, VOLC_AXN_BIND)
STATUSES = (200, 201, 204, 400, 401, 403, 404, 429, 500, 502, 503)


def _fields(channel: str, i: int) -> dict[str, Any]:
    if channel == USPEEDO_SMS:
        # Two templates and repeated parameters: the delicate matching of FailedTargetPhones.
        return {"template_id": f"T{i % 2}", "sender_id": "sid", "template_params": [str(i % 3)]}
    if channel == VOLC_VMS_APPEND:
        return {"task_open_id": "T1"}
    return {"content": "hello"}


#: Recipients, some repeated: answers name them by phone as well as by id.
PHONES = ("+8613800138000", "+8613800138001", "+8613800138000", "+12025550123", "+862131075869")


def messages(channel: str, count: int) -> list[OutMessage]:
    count = 1 if channel == VOLC_AXN_BIND else count
    return [
        OutMessage(f"msg-{i:08d}", PHONES[i % len(PHONES)], _fields(channel, i))
        for i in range(count)
    ]


def _headers(r: Reader) -> dict[str, str]:
    value = r.pick(("", "1", "2.5", "-1", "nan", "inf", "1e400", "999999", "x", " 3 "))
    return {"Retry-After": value} if r.flag() else {}


def _check_result(result: BatchResult, sent: list[OutMessage]) -> None:
    """One outcome per message, each for a message of the batch."""
    ids = {m.id for m in sent}
    assert all(isinstance(o, ItemOutcome) and o.message_id in ids for o in result.items)


def check(data: bytes) -> None:
    r = Reader(data)
    channel = r.pick(CHANNELS)
    status = r.pick(STATUSES) if r.flag() else 100 + r.below(500)
    headers = _headers(r)
    sent = messages(channel, 1 + r.below(len(PHONES)))
    body = json_body(r)
    adapter: Adapter = adapter_for(channel)
    with contextlib.suppress(DispatchError):
        _check_result(adapter.parse_response(sent, status, headers, body), sent)
    if channel == NXCLOUD_SMS:
        outcome = NxcloudAdapter().parse_status(sent[0], status, headers, body)
        assert outcome.message_id == sent[0].id


if __name__ == "__main__":
    from tests.fuzz.runner import main

    main("responses")
