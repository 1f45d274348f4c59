"""USpeedo delivery receipts (``USMSSendReceipt``), polled by :mod:`teledispatch.worker.receipts`:
USpeedo documents no DR webhook (docs/providers.md#uspeedo-receipts)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlencode

from teledispatch.channels import envelope
from teledispatch.channels.base import HttpRequest, Receipt
from teledispatch.channels.uspeedo.adapter import (
    PROVIDER,
    basic_auth,
    classify_ret_code,
    digits,
    provider_phone,
    ret_code,
    text,
)
from teledispatch.channels.uspeedo.codes import RECEIPT_RESULT
from teledispatch.config import AccountConfig
from teledispatch.errors import MalformedResponseError, RejectedError

RECEIPT_PATH = "/api/v1/usms/USMSSendReceipt"
#: Most ``id`` parameters one receipt query may carry.
MAX_RECEIPT_IDS = 100


def build_receipt_query(account: AccountConfig, session_ids: Sequence[str]) -> HttpRequest:
    """``GET …/USMSSendReceipt?id=…&id=…`` for up to :data:`MAX_RECEIPT_IDS` SessionNos."""
    if not 0 < len(session_ids) <= MAX_RECEIPT_IDS:
        raise ValueError(f"a receipt query takes 1..{MAX_RECEIPT_IDS} ids, got {len(session_ids)}")
    query = urlencode([("id", s) for s in session_ids])
    headers = {"Authorization": basic_auth(account)}
    return HttpRequest("GET", f"{account.base_url.rstrip('/')}{RECEIPT_PATH}?{query}", headers, b"")


def _answer(status: int, body: bytes) -> dict[str, Any]:
    envelope.check_status(PROVIDER, status)
    if not 200 <= status < 300:
        raise RejectedError(f"HTTP {status} from USpeedo", code=str(status))
    doc = envelope.load_json(body)
    if not isinstance(doc, dict):
        raise MalformedResponseError("USpeedo answered the receipt query with no JSON object")
    code = ret_code(doc.get("RetCode"))
    if code != 0:
        raise classify_ret_code(code, doc.get("RetCode"), text(doc.get("Message")), status)
    return doc


def _session_items(session: Any) -> list[tuple[str, dict[str, Any]]]:
    """``(phone digits, ReceiptSet entry)`` of one ``Data`` entry."""
    if not isinstance(session, dict) or not isinstance(session.get("SessionNo"), str):
        return []
    receipts = session.get("ReceiptSet")
    out: list[tuple[str, dict[str, Any]]] = []
    for item in receipts if isinstance(receipts, list) else []:
        phone = digits(item.get("Phone")) if isinstance(item, dict) else None
        if phone is not None:
            out.append((phone, item))
    return out


def parse_receipts(status: int, body: bytes) -> dict[tuple[str, str], dict[str, Any]]:
    """``(SessionNo, phone digits)`` → its ``ReceiptSet`` entry; raises ``DispatchError`` when
    the answer as a whole is unusable, so the caller can simply ask again later."""
    data = _answer(status, body).get("Data")
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for session in data if isinstance(data, list) else []:
        for phone, item in _session_items(session):
            out[(session["SessionNo"], phone)] = item
    return out


def uspeedo_receipt(item: Mapping[str, Any]) -> Receipt | None:
    """One ``ReceiptSet`` entry → the receipt, or None while the carrier has not answered."""
    result = item.get("ReceiptResult")
    if not isinstance(result, str) or result not in RECEIPT_RESULT:
        return None
    delivered = RECEIPT_RESULT[result]
    code = item.get("ReceiptCode")
    desc = item.get("ReceiptDesc")
    code_text = f"{result}/{code}" if isinstance(code, str) and code else result
    reason = desc if isinstance(desc, str) and desc else result
    return Receipt(delivered, code_text[:64], "" if delivered else reason[:1000])


class UspeedoReceiptPoller:
    """:class:`~teledispatch.channels.base.ReceiptPoller` over ``USMSSendReceipt``."""

    max_keys = MAX_RECEIPT_IDS

    def query_keys(self, provider_id: str) -> list[str]:
        # A message keeps all SessionNos, comma-joined, when their owners could not be told
        # apart (see the adapter's ``_session_ids``).
        return [s for s in provider_id.split(",") if s]

    def recipient(self, phone: str) -> str:
        return provider_phone(phone)

    def build_poll(self, account: AccountConfig, keys: Sequence[str]) -> HttpRequest:
        return build_receipt_query(account, keys)

    def parse_poll(self, status: int, body: bytes) -> dict[tuple[str, str], Receipt | None]:
        return {key: uspeedo_receipt(item) for key, item in parse_receipts(status, body).items()}
