"""USpeedo batch SMS (``POST /api/v1/usms/SendBatchUSMSMessage``), PROVIDERS.md §4.

One request carries several ``TaskContent`` entries, one per ``(TemplateId, SenderId)``, so
single OTPs with different templates still share a request. The answer names failures only by
phone (``FailedTargetPhones``), not by template, so matching them back is the delicate part: see
:func:`_failures`.

Phones are sent as country code + national number, digits only (``8613800138000``): USpeedo is
an international SMS service, and a bare national number (the doc's ``13800138000`` example)
would not say which country it is in.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlencode

from teledispatch.channels.base import BatchResult, HttpRequest, ItemOutcome, OutMessage
from teledispatch.config import AccountConfig
from teledispatch.errors import (
    DispatchError,
    MalformedResponseError,
    RejectedError,
    RetryableProviderError,
    ThrottledError,
)

PATH = "/api/v1/usms/SendBatchUSMSMessage"

#: "Server error": the same request may succeed later.
RETRYABLE_CODES = frozenset({215400})
#: Bad / missing parameter: the same request would be refused again.
REJECTED_CODES = frozenset({215392, 215397})


def provider_phone(phone: str) -> str:
    return phone.lstrip("+")


def _digits(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    return "".join(ch for ch in value if ch.isdigit()) or None


def _params(message: OutMessage) -> list[str]:
    params = message.fields.get("template_params")
    if isinstance(params, list | tuple):
        return [str(p) for p in params]
    return []


def _group(message: OutMessage) -> tuple[str, str]:
    return (str(message.fields.get("template_id", "")), str(message.fields.get("sender_id", "")))


def _groups(messages: Sequence[OutMessage]) -> list[tuple[tuple[str, str], list[int]]]:
    """Message indexes per ``(TemplateId, SenderId)``, in first-seen order (the request order)."""
    groups: dict[tuple[str, str], list[int]] = {}
    for i, message in enumerate(messages):
        groups.setdefault(_group(message), []).append(i)
    return list(groups.items())


def _target(message: OutMessage) -> dict[str, Any]:
    target: dict[str, Any] = {"Phone": provider_phone(message.phone)}
    params = _params(message)
    if params:
        target["TemplateParams"] = params
    return target


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value[:500]
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return ""


def _code(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit() and len(value) < 20:
        return int(value)
    return None


class UspeedoAdapter:
    channel = "uspeedo.sms"

    def build_request(
        self, account: AccountConfig, messages: Sequence[OutMessage], now: float
    ) -> HttpRequest:
        content = [
            {
                "TemplateId": template_id,
                "SenderId": sender_id,
                "Target": [_target(messages[i]) for i in indexes],
            }
            for (template_id, sender_id), indexes in _groups(messages)
        ]
        body = json.dumps({"TaskContent": content}, ensure_ascii=False, separators=(",", ":"))
        credentials = f"{account.access_key}:{account.secret.get_secret_value()}"
        headers = {
            "Authorization": "Basic " + base64.b64encode(credentials.encode()).decode("ascii"),
            "Content-Type": "application/json",
        }
        return HttpRequest("POST", account.base_url.rstrip("/") + PATH, headers, body.encode())

    def parse_response(
        self, messages: Sequence[OutMessage], status: int, headers: Mapping[str, str], body: bytes
    ) -> BatchResult:
        if status == 429:
            raise ThrottledError("HTTP 429 from USpeedo", code="429")
        if status >= 500:
            raise RetryableProviderError(f"HTTP {status} from USpeedo", code=str(status))
        if status in (401, 403):
            # The message names the cause but never the credentials that were refused.
            raise RejectedError(
                f"USpeedo refused the account's credentials (HTTP {status})", code=str(status)
            )
        try:
            doc = json.loads(body)
        except (ValueError, RecursionError):
            doc = None
        if not isinstance(doc, dict):
            if 200 <= status < 300:
                raise MalformedResponseError(f"USpeedo answered HTTP {status} with no JSON object")
            raise RejectedError(f"HTTP {status} from USpeedo", code=str(status))
        code = _code(doc.get("RetCode"))
        text = _text(doc.get("Message"))
        if code != 0:
            raise _classify(code, doc.get("RetCode"), text, status)
        if not 200 <= status < 300:
            raise RejectedError(text or f"HTTP {status} from USpeedo", code=str(status))
        return BatchResult(_outcomes(messages, doc))


def _classify(code: int | None, raw: Any, text: str, status: int) -> DispatchError:
    if code is None:
        if 200 <= status < 300:
            return MalformedResponseError(
                f"USpeedo answered without a usable RetCode ({raw!r:.40})"
            )
        return RejectedError(text or f"HTTP {status} from USpeedo", code=str(status))
    label = str(code)
    if code in RETRYABLE_CODES:
        return RetryableProviderError(text or "server error", code=label)
    # 215392 / 215397 and any undocumented code: the provider refused the whole request.
    return RejectedError(text or "rejected", code=label)


def _session_ids(messages: Sequence[OutMessage], doc: dict[str, Any]) -> list[str | None]:
    """``SessionNo`` per message: one per TaskContent, one for all, or one per target.

    When the count fits none of these we cannot tell which id is whose; every message then
    keeps all of them, comma-joined, since ``USMSSendReceipt`` takes several ids at once.
    """
    raw = doc.get("SessionNo")
    if isinstance(raw, str):
        raw = [raw]
    sessions = [s for s in raw if isinstance(s, str) and s] if isinstance(raw, list) else []
    ids: list[str | None] = [None] * len(messages)
    if not sessions:
        return ids
    groups = _groups(messages)
    if len(sessions) == 1:
        return [sessions[0]] * len(messages)
    if len(sessions) == len(groups):
        for session, (_, indexes) in zip(sessions, groups, strict=True):
            for i in indexes:
                ids[i] = session
        return ids
    if len(sessions) == len(messages):
        order = [i for _, indexes in groups for i in indexes]
        for session, i in zip(sessions, order, strict=True):
            ids[i] = session
        return ids
    joined = ",".join(sessions)[:500]
    return [joined] * len(messages)


def _failures(
    messages: Sequence[OutMessage], entries: list[Any]
) -> tuple[dict[int, str], set[int]]:
    """Failed message indexes (with the reason) and indexes we cannot tell apart.

    ``FailedTargetPhones`` names a phone and its ``TemplateParams`` but not the template. When
    one phone appears once in the batch, the match is certain. When it appears several times,
    an entry is matched by its parameters; if that still leaves a choice (same phone, same
    parameters, different templates) and fewer entries than candidates came back, those
    candidates are ``unknown``: some of them went out and we cannot say which.
    """
    by_phone: dict[str, list[int]] = {}
    for i, message in enumerate(messages):
        by_phone.setdefault(provider_phone(message.phone), []).append(i)
    reported: dict[str, list[tuple[str, list[str] | None]]] = {}
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        phone = _digits(entry.get("Phone"))
        if phone is None or phone not in by_phone:
            continue
        raw = entry.get("TemplateParams")
        params = (
            [str(p) for p in raw if isinstance(p, str | int)] if isinstance(raw, list) else None
        )
        reason = _text(entry.get("FailureReason")) or "failed"
        reported.setdefault(phone, []).append((reason, params))
    failed: dict[int, str] = {}
    unknown: set[int] = set()
    for phone, phone_entries in reported.items():
        candidates = list(by_phone[phone])
        leftovers: list[str] = []
        pool: set[int] = set()
        for reason, params in phone_entries:
            if not candidates:
                break
            matches = [i for i in candidates if _params(messages[i]) == params]
            if len(candidates) == 1 or len(matches) == 1:
                chosen = candidates[0] if len(candidates) == 1 else matches[0]
                failed[chosen] = reason
                candidates.remove(chosen)
            else:
                leftovers.append(reason)
                # Same parameters on several templates: one of those; no usable match: any.
                pool.update(matches or candidates)
        if leftovers and len(leftovers) >= len(candidates):
            for i, reason in zip(candidates, leftovers, strict=False):
                failed[i] = reason
        elif leftovers:
            unknown.update(i for i in pool if i in candidates)
    return failed, unknown


def _outcomes(messages: Sequence[OutMessage], doc: dict[str, Any]) -> list[ItemOutcome]:
    raw = doc.get("FailedTargetPhones")
    entries = raw if isinstance(raw, list) else []
    failed, unknown = _failures(messages, entries)
    sessions = _session_ids(messages, doc)
    outcomes: list[ItemOutcome] = []
    for i, message in enumerate(messages):
        if i in failed:
            outcomes.append(
                ItemOutcome(message.id, "failed", error_code="FailedTargetPhone",
                            error_text=failed[i])
            )  # fmt: skip
        elif i in unknown:
            outcomes.append(
                ItemOutcome(
                    message.id,
                    "unknown",
                    provider_id=sessions[i],
                    error_code="ambiguous",
                    error_text="a failure was reported for this phone with another template",
                )
            )
        else:
            outcomes.append(ItemOutcome(message.id, "sent", provider_id=sessions[i]))
    return outcomes


# --- receipts (``USMSSendReceipt``), polled by teledispatch.worker.receipts ---------------

RECEIPT_PATH = "/api/v1/usms/USMSSendReceipt"
#: Most ``id`` parameters one receipt query may carry.
MAX_RECEIPT_IDS = 100


def build_receipt_query(account: AccountConfig, session_ids: Sequence[str]) -> HttpRequest:
    """``GET …/USMSSendReceipt?id=…&id=…`` for up to :data:`MAX_RECEIPT_IDS` SessionNos."""
    if not 0 < len(session_ids) <= MAX_RECEIPT_IDS:
        raise ValueError(f"a receipt query takes 1..{MAX_RECEIPT_IDS} ids, got {len(session_ids)}")
    query = urlencode([("id", s) for s in session_ids])
    credentials = f"{account.access_key}:{account.secret.get_secret_value()}"
    headers = {"Authorization": "Basic " + base64.b64encode(credentials.encode()).decode("ascii")}
    return HttpRequest("GET", f"{account.base_url.rstrip('/')}{RECEIPT_PATH}?{query}", headers, b"")


def parse_receipts(status: int, body: bytes) -> dict[tuple[str, str], dict[str, Any]]:
    """``(SessionNo, phone digits)`` → its ``ReceiptSet`` entry; raises ``DispatchError`` when
    the answer as a whole is unusable, so the caller can simply ask again later."""
    if status == 429:
        raise ThrottledError("HTTP 429 from USpeedo", code="429")
    if status >= 500:
        raise RetryableProviderError(f"HTTP {status} from USpeedo", code=str(status))
    if not 200 <= status < 300:
        raise RejectedError(f"HTTP {status} from USpeedo", code=str(status))
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError):
        doc = None
    if not isinstance(doc, dict):
        raise MalformedResponseError("USpeedo answered the receipt query with no JSON object")
    code = _code(doc.get("RetCode"))
    if code != 0:
        raise _classify(code, doc.get("RetCode"), _text(doc.get("Message")), status)
    out: dict[tuple[str, str], dict[str, Any]] = {}
    data = doc.get("Data")
    for session in data if isinstance(data, list) else []:
        if not isinstance(session, dict) or not isinstance(session.get("SessionNo"), str):
            continue
        receipts = session.get("ReceiptSet")
        for item in receipts if isinstance(receipts, list) else []:
            phone = _digits(item.get("Phone")) if isinstance(item, dict) else None
            if phone is not None:
                out[(session["SessionNo"], phone)] = item
    return out
