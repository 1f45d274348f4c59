"""NXCloud batch SMS (``POST /v1/sms/multi/mt``), docs/providers.md#nxcloud-batch-sms.

Pure: request bytes in, outcomes out. Our message id travels as ``sysMessageId``, which NXCloud
returns as ``messageid``, so each answer item is matched to its recipient by id, not by position.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlencode

from teledispatch.channels import envelope
from teledispatch.channels.base import BatchResult, HttpRequest, ItemOutcome, OutMessage
from teledispatch.channels.codes import classify, codes_of
from teledispatch.channels.ids import NXCLOUD_SMS
from teledispatch.channels.nxcloud.codes import (
    CODES,
    DEFAULT,
    ITEM_TEXTS,
    RECIPIENT_CAP_WINDOW_S,
)
from teledispatch.config import AccountConfig
from teledispatch.errors import DispatchError, MalformedResponseError

PATH = "/v1/sms/multi/mt"
STATUS_PATH = "/api/sms/get"
BIZ_TYPE = "3"
ACTION = "mtsend"

#: Codes that only make one number wait; they arrive in an item's text.
_RECIPIENT_CODES = codes_of(CODES, "defer_recipient")

_FIELD_NAMES = {
    "content": "content",
    "source_address": "sourceAddress",
    "ext": "ext",
    "short_link": "shortLink",
    "link_verbose": "linkVerbose",
    "dr_url": "drUrl",
}


def sign(headers: Mapping[str, str], body: str, secret: str) -> str:
    """``md5("k=v&…" + "&body=" + body + "&accessSecret=" + secret)``, pairs in ASCII key order."""
    pairs = "&".join(f"{k}={headers[k]}" for k in sorted(headers))
    text = pairs + (f"&body={body}" if body else "") + f"&accessSecret={secret}"
    return hashlib.md5(text.encode("utf-8")).hexdigest()


#: ``_FIELD_NAMES`` as pairs, walked once per recipient: no view object per message.
_FIELD_PAIRS = tuple(_FIELD_NAMES.items())


def _item(message: OutMessage) -> dict[str, Any]:
    item: dict[str, Any] = {"phone": message.phone.lstrip("+"), "sysMessageId": message.id}
    get = message.fields.get
    for ours, theirs in _FIELD_PAIRS:
        value = get(ours)
        if value is not None:
            item[theirs] = value
    return item


class NxcloudAdapter:
    channel = NXCLOUD_SMS

    def build_request(
        self, account: AccountConfig, messages: Sequence[OutMessage], now: float
    ) -> HttpRequest:
        body = json.dumps(
            {"appKey": account.app_key, "items": [_item(m) for m in messages]},
            ensure_ascii=False,
            separators=(",", ":"),
        )
        signed = {
            "accessKey": account.access_key,
            "action": ACTION,
            "bizType": BIZ_TYPE,
            "ts": str(int(now * 1000)),
        }
        headers = {
            **signed,
            "sign": sign(signed, body, account.secret.get_secret_value()),
            "Content-Type": "application/json;charset=utf-8",
        }
        return HttpRequest("POST", account.base_url.rstrip("/") + PATH, headers, body.encode())

    def parse_response(
        self, messages: Sequence[OutMessage], status: int, headers: Mapping[str, str], body: bytes
    ) -> BatchResult:
        doc = envelope.json_object("NXCloud", status, body)
        code = doc.get("code")
        text = str(doc.get("message") or "")[:500]
        if code != 0 and code != "0":
            raise _classify(code, text, status)
        data = doc.get("data")
        if not isinstance(data, list):
            raise MalformedResponseError("NXCloud answered code 0 without a data list")
        return BatchResult(_items(messages, data))

    def status_query(
        self, account: AccountConfig, message: OutMessage, sent_at: float, now: float
    ) -> HttpRequest | None:
        """``/api/sms/get`` by our ``sysMessageId`` and the send date (UTC+8, China time)."""
        date = time.strftime("%Y%m%d", time.gmtime(sent_at + 8 * 3600))
        body = urlencode(
            {
                "appkey": account.app_key,
                "secretkey": account.secret.get_secret_value(),
                "messageid": message.id,
                "date": date,
            }
        )
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        url = account.base_url.rstrip("/") + STATUS_PATH
        return HttpRequest("POST", url, headers, body.encode())

    def parse_status(
        self, message: OutMessage, status: int, headers: Mapping[str, str], body: bytes
    ) -> ItemOutcome:
        """``sent`` if NXCloud has the message, ``retry`` if it provably never got it."""
        doc = envelope.load_json(body)
        if status != 200 or not isinstance(doc, dict) or str(doc.get("code")) != "0":
            return ItemOutcome(message.id, "unknown", error_code="status_query", error_text="")
        row = doc.get("row")
        if isinstance(row, dict) and row.get("msgid") == message.id:
            return ItemOutcome(message.id, "sent", provider_id=message.id)
        return ItemOutcome(
            message.id,
            "retry",
            error_code="not_received",
            error_text="status query: NXCloud has no such message",
        )


_CODE_IN_TEXT = re.compile(r"\((-?\d+)\)\s*$")


def _classify(code: Any, text: str, status: int) -> DispatchError:
    try:
        number = int(code)
    except (TypeError, ValueError, OverflowError):
        return MalformedResponseError(f"NXCloud answered HTTP {status} with code {code!r}")
    return classify(CODES, str(number), text, DEFAULT)


def _items(messages: Sequence[OutMessage], data: list[Any]) -> list[ItemOutcome]:
    by_id: dict[str, dict[str, Any]] = {}
    for entry in data:
        if isinstance(entry, dict):
            key = entry.get("messageid")
            if isinstance(key, str):
                by_id[key] = entry
    return [_item_outcome(message, by_id.get(message.id)) for message in messages]


def _item_outcome(message: OutMessage, entry: dict[str, Any] | None) -> ItemOutcome:
    if entry is None:
        # The provider accepted the request but said nothing of this item: it may or may not
        # go out, so it is treated like an ambiguous send (reconciled by status query).
        return ItemOutcome(message.id, "unknown", error_code="missing", error_text="no item status")
    item_text = str(entry.get("message") or "")[:500]
    if entry.get("status") == "Success":
        return ItemOutcome(message.id, "sent", provider_id=message.id)
    code = _item_code(item_text)
    if code in _RECIPIENT_CODES:
        return ItemOutcome(
            message.id,
            "deferred",
            error_code=code,
            error_text=item_text,
            retry_in=RECIPIENT_CAP_WINDOW_S,
        )
    return ItemOutcome(message.id, "failed", error_code=code, error_text=item_text)


def _item_code(item_text: str) -> str:
    """The code of a failed item: a ``(NNNN)`` suffix if there is one, else the documented
    plain text it starts with (the real API's form), else ``Failure``."""
    m = _CODE_IN_TEXT.search(item_text)
    if m:
        return m.group(1)
    lowered = item_text.strip().lower()
    found = (code for start, code in ITEM_TEXTS.items() if lowered.startswith(start))
    return next(found, "Failure")
