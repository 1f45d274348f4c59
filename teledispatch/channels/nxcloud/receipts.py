"""NXCloud delivery reports, pushed once per message to the ``drUrl`` we gave
(docs/providers.md#nxcloud-delivery-reports). DRs are unsigned, so the API authenticates them
with a per-account token in the URL (:func:`nxcloud_token_ok`)."""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from dataclasses import dataclass

from teledispatch.channels.base import PushedReceipt, Receipt
from teledispatch.channels.ids import NXCLOUD_SMS
from teledispatch.channels.nxcloud.codes import DR_RESULT, DR_STATUS
from teledispatch.config import AccountConfig


@dataclass(frozen=True, slots=True)
class NxDr:
    message_id: str
    phone: str
    receipt: Receipt


def _field(fields: Mapping[str, str], name: str) -> str:
    return (fields.get(name) or "").strip()


def parse_nxcloud_dr(fields: Mapping[str, str]) -> NxDr | None:
    """A DR's fields (form body or query string) → the receipt, or None if it settles nothing."""
    message_id = _field(fields, "messageid")
    if not message_id or len(message_id) > 100:
        return None
    status = _field(fields, "status")
    result = _field(fields, "result").upper()
    known = DR_STATUS.get(status) or DR_RESULT.get(result)
    if known is None:
        return None
    delivered, reason = known
    code = "/".join(p for p in (status, result) if p)[:64]
    receipt = Receipt(delivered, code, "" if delivered else reason)
    return NxDr(message_id=message_id, phone=_field(fields, "phone"), receipt=receipt)


def nxcloud_token_ok(account: AccountConfig | None, presented: str) -> bool:
    """The per-account DR token, compared in constant time; unknown and misconfigured
    accounts take the same path as a wrong token."""
    token = account.callback_token.get_secret_value() if account is not None else ""
    ok = hmac.compare_digest(
        (token or "\x00unconfigured").encode(), presented.encode("utf-8", "replace")
    )
    return ok and bool(token) and account is not None and account.channel == NXCLOUD_SMS


class NxcloudReceiptParser:
    """:class:`~teledispatch.channels.base.ReceiptParser`: one DR per push, by our message id."""

    def parse_push(self, fields: Mapping[str, str], body: bytes) -> list[PushedReceipt]:
        dr = parse_nxcloud_dr(fields)
        return [] if dr is None else [PushedReceipt(dr.receipt, message_id=dr.message_id)]
