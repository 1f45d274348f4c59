"""Volcengine VMS call records, pushed to our API for ``volc.vms.append`` tasks
(docs/providers.md#volcengine-call-records). Pushes are retried by the provider, so one record
may arrive several times; settling is idempotent (first final wins)."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from teledispatch.channels.base import PushedReceipt, Receipt
from teledispatch.channels.envelope import load_json
from teledispatch.channels.ids import VOLC_VMS_APPEND
from teledispatch.config import AccountConfig

_TASK_KEYS = ("TaskOpenId", "taskOpenId", "TaskId", "taskId")
_PHONE_KEYS = ("Phone", "phone", "Called", "CalledNumber", "PhoneNo")
_DURATION_KEYS = ("Duration", "duration", "CallDuration", "TalkDuration")
_ANSWER_KEYS = ("AnswerTime", "answerTime", "StartTime")
_RESULT_KEYS = ("CallResult", "Result", "ReleaseType", "State", "Status", "status")
_NESTED_KEYS = ("Data", "data", "Records", "CallRecords")


def volc_auth_code(timestamp: str, body: bytes, auth_token: str) -> str:
    """``hex(sha256(timestamp + hex(sha256(body)) + authToken))``
    (docs/providers.md#volcengine-call-records)."""
    inner = hashlib.sha256(body).hexdigest()
    return hashlib.sha256((timestamp + inner + auth_token).encode()).hexdigest()


def volc_verified(
    account: AccountConfig | None, timestamp: str, auth_code: str, body: bytes
) -> bool:
    """Constant-time check; an unknown account costs the same work as a wrong code, so the
    answer says nothing about which accounts exist."""
    token = account.callback_token.get_secret_value() if account is not None else ""
    expected = volc_auth_code(timestamp, body, token or "\x00unconfigured")
    ok = hmac.compare_digest(expected.encode(), auth_code.strip().lower().encode())
    return ok and bool(token) and account is not None and account.channel == VOLC_VMS_APPEND


@dataclass(frozen=True, slots=True)
class VolcRecord:
    task_open_id: str
    #: As the callback carries it: national digits, the form BatchAppend sent.
    phone: str
    receipt: Receipt

    @property
    def provider_id(self) -> str:
        return f"{self.task_open_id}:{self.phone}"


def _first(item: Mapping[str, Any], keys: Iterable[str]) -> Any:
    for key in keys:
        if key in item and item[key] not in (None, ""):
            return item[key]
    return None


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _volc_items(doc: Any) -> Iterable[Mapping[str, Any]]:
    if isinstance(doc, list):
        for entry in doc:
            yield from _volc_items(entry)
    elif isinstance(doc, dict):
        inner = _first(doc, _NESTED_KEYS)
        if isinstance(inner, list | dict):
            yield from _volc_items(inner)
        else:
            yield doc


def _answered(item: Mapping[str, Any]) -> bool | None:
    """True if the call was answered, False if the record says it was not, None if it does
    not say (no duration, answer time or result)."""
    duration = _number(_first(item, _DURATION_KEYS))
    answer = _first(item, _ANSWER_KEYS)
    answered_at = _number(answer)
    if (duration is not None and duration > 0) or (
        answer is not None and (answered_at is None or answered_at > 0)
    ):
        return True
    if duration is not None or _first(item, _RESULT_KEYS) is not None:
        return False
    return None


def volc_record(item: Mapping[str, Any]) -> VolcRecord | None:
    """One call record → the receipt, or None when it names no task/phone or no outcome.

    The call-record body is not published with the send APIs; this reads the fields the VMS
    APIs use elsewhere (``TaskOpenId``, ``Phone``, ``Duration``, ``AnswerTime``, ``State``)
    and tolerates their usual variants. Answered (duration > 0 or an answer time) is
    ``delivered``; a record with a zero duration or only a result code is ``undelivered``.
    """
    task = _first(item, _TASK_KEYS)
    phone = _first(item, _PHONE_KEYS)
    if not isinstance(task, str | int) or not isinstance(phone, str | int):
        return None
    digits = "".join(ch for ch in str(phone) if ch.isdigit())
    answered = _answered(item) if digits else None
    if answered is None:
        return None
    result = _first(item, _RESULT_KEYS)
    if answered:
        receipt = Receipt(True, str(result or "answered")[:64], "")
    else:
        code = str(result if result is not None else "not_answered")[:64]
        receipt = Receipt(False, code, f"call not answered ({code})"[:1000])
    return VolcRecord(str(task), digits, receipt)


def parse_volc_records(body: bytes) -> list[VolcRecord]:
    """Every usable call record in a push (a single object, a list, or ``{"Data": …}``)."""
    doc = load_json(body)
    if doc is None:
        return []
    return [r for r in (volc_record(i) for i in _volc_items(doc)) if r is not None]


class VolcVmsReceiptParser:
    """:class:`~teledispatch.channels.base.ReceiptParser`: call records, by provider id."""

    def parse_push(self, fields: Mapping[str, str], body: bytes) -> list[PushedReceipt]:
        return [
            PushedReceipt(r.receipt, provider_id=r.provider_id) for r in parse_volc_records(body)
        ]
