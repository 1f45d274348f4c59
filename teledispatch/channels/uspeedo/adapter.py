"""USpeedo batch SMS (``POST /api/v1/usms/SendBatchUSMSMessage``),
docs/providers.md#uspeedo-batch-sms.

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

from teledispatch.channels import envelope
from teledispatch.channels.base import BatchResult, HttpRequest, ItemOutcome, OutMessage
from teledispatch.channels.codes import classify
from teledispatch.channels.ids import USPEEDO_SMS
from teledispatch.channels.uspeedo.codes import AUTH_STATUSES, CODES, DEFAULT
from teledispatch.config import AccountConfig
from teledispatch.errors import DispatchError, MalformedResponseError, RejectedError

PATH = "/api/v1/usms/SendBatchUSMSMessage"
PROVIDER = "USpeedo"


def provider_phone(phone: str) -> str:
    return phone.lstrip("+")


def basic_auth(account: AccountConfig) -> str:
    credentials = f"{account.access_key}:{account.secret.get_secret_value()}"
    return "Basic " + base64.b64encode(credentials.encode()).decode("ascii")


def digits(value: Any) -> str | None:
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


def text(value: Any) -> str:
    if isinstance(value, str):
        return value[:500]
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return ""


def ret_code(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and len(value) < 20:
        # ASCII digits only: str.isdigit() also says True for "²", which int() refuses; and
        # one sign only ("--5" is no number either).
        number = value.strip().removeprefix("-")
        if number.isascii() and number.isdigit():
            return int(value)
    return None


class UspeedoAdapter:
    channel = USPEEDO_SMS

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
        headers = {"Authorization": basic_auth(account), "Content-Type": "application/json"}
        return HttpRequest("POST", account.base_url.rstrip("/") + PATH, headers, body.encode())

    def parse_response(
        self, messages: Sequence[OutMessage], status: int, headers: Mapping[str, str], body: bytes
    ) -> BatchResult:
        doc = envelope.json_object(PROVIDER, status, body, AUTH_STATUSES)
        code = ret_code(doc.get("RetCode"))
        message = text(doc.get("Message"))
        if code != 0 and not _partial_success(doc):
            raise classify_ret_code(code, doc.get("RetCode"), message, status)
        if not 200 <= status < 300:
            raise RejectedError(message or f"HTTP {status} from USpeedo", code=str(status))
        return BatchResult(_outcomes(messages, doc))


def classify_ret_code(code: int | None, raw: Any, message: str, status: int) -> DispatchError:
    """The batch-wide error for a ``RetCode`` other than 0 (or none usable)."""
    if code is None:
        if 200 <= status < 300:
            return MalformedResponseError(
                f"USpeedo answered without a usable RetCode ({raw!r:.40})"
            )
        return RejectedError(message or f"HTTP {status} from USpeedo", code=str(status))
    return classify(CODES, str(code), message, DEFAULT)


def _partial_success(doc: dict[str, Any]) -> bool:
    """A non-zero ``RetCode`` that still names per-number failures and a ``SessionNo``: some
    numbers were accepted (the older gateway documents ``FailContent`` for exactly this), so
    the answer is read per number rather than failing the whole batch."""
    return bool(_sessions(doc)) and bool(_failure_entries(doc))


def _failure_entries(doc: dict[str, Any]) -> list[Any]:
    """Per-number failures as ``FailedTargetPhones`` entries, from either documented shape.

    The Basic-auth reference lists ``FailedTargetPhones``; the SDKs and the older gateway
    answer ``FailContent``, one entry per ``TaskContent`` with its ``Target`` list, each
    ``FailureDetails`` (present with ``RetCode`` 0 too). A ``FailContent`` entry whose
    ``Target`` list is empty but has ``FailureDetails`` refused its whole TaskContent.
    """
    raw = doc.get("FailedTargetPhones")
    entries: list[Any] = list(raw) if isinstance(raw, list) else []
    content = doc.get("FailContent")
    for task in content if isinstance(content, list) else []:
        if not isinstance(task, dict):
            continue
        reason = text(task.get("FailureDetails"))
        targets = task.get("Target")
        for target in targets if isinstance(targets, list) else []:
            if isinstance(target, dict):
                entries.append(
                    {
                        "Phone": target.get("Phone"),
                        "TemplateParams": target.get("TemplateParams"),
                        "FailureReason": text(target.get("FailureDetails")) or reason,
                    }
                )
    return entries


def _refused_tasks(doc: dict[str, Any]) -> dict[tuple[str, str], str]:
    """``FailContent`` entries that refused a whole ``(TemplateId, SenderId)``, with the why."""
    refused: dict[tuple[str, str], str] = {}
    content = doc.get("FailContent")
    for task in content if isinstance(content, list) else []:
        if isinstance(task, dict) and not task.get("Target") and text(task.get("FailureDetails")):
            key = (text(task.get("TemplateId")), text(task.get("SenderId")))
            refused[key] = text(task.get("FailureDetails"))
    return refused


def _sessions(doc: dict[str, Any]) -> list[str]:
    raw = doc.get("SessionNo")
    if isinstance(raw, str):
        raw = [raw]
    return [s for s in raw if isinstance(s, str) and s] if isinstance(raw, list) else []


def _session_ids(messages: Sequence[OutMessage], doc: dict[str, Any]) -> list[str | None]:
    """``SessionNo`` per message: one per TaskContent, one for all, or one per target.

    When the count fits none of these we cannot tell which id is whose; every message then
    keeps all of them, comma-joined, since ``USMSSendReceipt`` takes several ids at once.
    """
    sessions = _sessions(doc)
    if not sessions:
        return [None] * len(messages)
    if len(sessions) == 1:
        return [sessions[0]] * len(messages)
    groups = _groups(messages)
    # Per TaskContent when the counts match, else per target in request order.
    per_group = len(sessions) == len(groups)
    if not per_group and len(sessions) != len(messages):
        joined = ",".join(sessions)[:500]
        return [joined] * len(messages)
    ids: list[str | None] = [None] * len(messages)
    order = [(g, i) for g, (_, indexes) in enumerate(groups) for i in indexes]
    for n, (g, i) in enumerate(order):
        ids[i] = sessions[g] if per_group else sessions[n]
    return ids


def _reported(
    by_phone: Mapping[str, list[int]], entries: list[Any]
) -> dict[str, list[tuple[str, list[str] | None]]]:
    """``FailedTargetPhones`` entries we can place, per phone: (reason, TemplateParams)."""
    reported: dict[str, list[tuple[str, list[str] | None]]] = {}
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        phone = digits(entry.get("Phone"))
        if phone is None or phone not in by_phone:
            continue
        raw = entry.get("TemplateParams")
        params = (
            [str(p) for p in raw if isinstance(p, str | int)] if isinstance(raw, list) else None
        )
        reason = text(entry.get("FailureReason")) or "failed"
        reported.setdefault(phone, []).append((reason, params))
    return reported


def _match_phone(
    messages: Sequence[OutMessage],
    candidates: list[int],
    phone_entries: list[tuple[str, list[str] | None]],
    failed: dict[int, str],
    unknown: set[int],
) -> None:
    """Place one phone's failure entries among the messages to that phone (``candidates``)."""
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
    failed: dict[int, str] = {}
    unknown: set[int] = set()
    for phone, phone_entries in _reported(by_phone, entries).items():
        _match_phone(messages, list(by_phone[phone]), phone_entries, failed, unknown)
    return failed, unknown


def _outcomes(messages: Sequence[OutMessage], doc: dict[str, Any]) -> list[ItemOutcome]:
    failed, unknown = _failures(messages, _failure_entries(doc))
    refused = _refused_tasks(doc)
    if refused:
        for i, message in enumerate(messages):
            if _group(message) in refused:
                failed[i] = refused[_group(message)]
                unknown.discard(i)
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
