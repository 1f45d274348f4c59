"""Door 2: delivery receipts. A pushed NXCloud DR (form or query fields), a pushed Volcengine
call record (any body) and a polled USpeedo ``USMSSendReceipt`` answer (any status and body)
settle something or nothing; only the poll may raise, and then only a ``DispatchError``.

Input layout: which receipt kind, then (for the poll) a status, then the body.
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from teledispatch.channels.base import PushedReceipt, Receipt
from teledispatch.channels.nxcloud.receipts import NxcloudReceiptParser, parse_nxcloud_dr
from teledispatch.channels.uspeedo.receipts import UspeedoReceiptPoller
from teledispatch.channels.volc.vms_receipts import VolcVmsReceiptParser, volc_verified
from teledispatch.errors import DispatchError
from tests.fuzz.reader import Reader, json_body

STATUSES = (200, 200, 204, 400, 401, 429, 500, 503)


def _pushed(found: list[PushedReceipt]) -> None:
    for push in found:
        assert isinstance(push.receipt, Receipt)
        assert push.message_id is not None or push.provider_id is not None
        assert isinstance(push.receipt.code, str) and len(push.receipt.code) <= 64


def _nxcloud(r: Reader) -> None:
    # As the API builds the fields: query values, then the form body decoded with "replace".
    body = r.rest()
    fields = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
    _pushed(NxcloudReceiptParser().parse_push(fields, body))
    parse_nxcloud_dr(fields)


def _volc(r: Reader) -> None:
    body = json_body(r)
    _pushed(VolcVmsReceiptParser().parse_push({}, body))
    # The signature check sees the query strings as Starlette decodes them (no surrogates).
    text = body[:80].decode("utf-8", "replace")
    assert volc_verified(None, text, text, body) is False


def _uspeedo(r: Reader) -> None:
    status = r.pick(STATUSES)
    body = json_body(r)
    try:
        answers = UspeedoReceiptPoller().parse_poll(status, body)
    except DispatchError:
        return
    for (session, phone), receipt in answers.items():
        assert isinstance(session, str) and isinstance(phone, str)
        assert receipt is None or isinstance(receipt, Receipt)


def check(data: bytes) -> None:
    r = Reader(data)
    (_nxcloud, _volc, _uspeedo)[r.below(3)](r)


if __name__ == "__main__":
    from tests.fuzz.runner import main

    main("receipts")
