"""Volcengine VMS ``BatchAppend`` (add numbers to a voice-notification task),
docs/providers.md#volcengine-vms-batchappend.

A request appends to exactly one task (``TaskOpenId``), so the channel rules' ``group_key``
(``producer.channels.volc_vms``) is the task id and the dispatcher never mixes tasks in one
request. ``FailList`` names failures by
``Index`` (position in ``PhoneList``) and ``Phone``; every other item was appended.

Phones are sent in national form (``13800138000``, landlines ``02131075869``): VMS is a Chinese
mainland service, its docs and SDK samples show national numbers, and the gateway reports
``INVALID_PHONE_FORMAT`` for anything but digits. The same national form is what call-record
callbacks carry, so ``provider_id`` is ``"<TaskOpenId>:<phone as sent>"`` — the key a
callback can be matched on (BatchAppend itself returns no per-number id).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import phonenumbers

from teledispatch.channels.base import BatchResult, HttpRequest, ItemOutcome, OutMessage
from teledispatch.channels.ids import VOLC_VMS_APPEND
from teledispatch.channels.volc import gateway as volc_sign
from teledispatch.config import AccountConfig
from teledispatch.errors import MalformedResponseError

QUERY = "?Action=BatchAppend&Version=2022-01-01"
CONTENT_TYPE = "application/json; charset=UTF-8"

_FIELD_NAMES = {
    "phone_param": "PhoneParam",
    "phone_param_json": "PhoneParamJson",
    "sms_param_json": "SmsParamJson",
    "tts_content": "TtsContent",
    "ext": "Ext",
}


def national_phone(phone: str) -> str:
    """National digits for a +86 number (trunk ``0`` kept for landlines), else CC + number."""
    try:
        number = phonenumbers.parse(phone, None)
    except phonenumbers.NumberParseException:
        return "".join(ch for ch in phone if ch.isdigit())
    if number.country_code == 86:
        text = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL)
    else:
        text = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    return "".join(ch for ch in text if ch.isdigit())


def url(account: AccountConfig, query: str) -> str:
    return account.base_url.rstrip("/") + "/" + query


def _json_text(value: Any) -> Any:
    """The rules already serialise dicts; a dict arriving here directly is serialised the same."""
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return value


def _item(message: OutMessage) -> dict[str, Any]:
    item: dict[str, Any] = {"Phone": national_phone(message.phone)}
    for ours, theirs in _FIELD_NAMES.items():
        value = message.fields.get(ours)
        if value is not None:
            item[theirs] = _json_text(value)
    return item


def _task(messages: Sequence[OutMessage]) -> str:
    tasks = {str(m.fields.get("task_open_id", "")) for m in messages}
    if len(tasks) != 1:
        # group_key keeps tasks apart; reaching here is a dispatcher bug, not bad input.
        raise ValueError(f"one BatchAppend request serves one task, got {len(tasks)}")
    return tasks.pop()


class VolcVmsAdapter:
    channel = VOLC_VMS_APPEND

    def build_request(
        self, account: AccountConfig, messages: Sequence[OutMessage], now: float
    ) -> HttpRequest:
        doc = {"TaskOpenId": _task(messages), "PhoneList": [_item(m) for m in messages]}
        body = json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        target = url(account, QUERY)
        headers = volc_sign.signed_headers(account, "POST", target, CONTENT_TYPE, body, now)
        return HttpRequest("POST", target, headers, body)

    def parse_response(
        self, messages: Sequence[OutMessage], status: int, headers: Mapping[str, str], body: bytes
    ) -> BatchResult:
        result = volc_sign.result_or_raise(status, headers, body)
        fail_list = result.get("FailList")
        if fail_list is None:
            fail_list = []
        if not isinstance(fail_list, list):
            raise MalformedResponseError("BatchAppend Result.FailList is not a list")
        failures = _failures(messages, fail_list)
        outcomes: list[ItemOutcome] = []
        for i, message in enumerate(messages):
            phone = national_phone(message.phone)
            task = str(message.fields.get("task_open_id", ""))
            if i in failures:
                code, text = failures[i]
                outcomes.append(ItemOutcome(message.id, "failed", None, code, text))
            else:
                outcomes.append(ItemOutcome(message.id, "sent", provider_id=f"{task}:{phone}"))
        return BatchResult(outcomes)


def _same_phone(reported: str, sent: str) -> bool:
    """Equal digits, allowing the gateway to echo the number with or without ``86``."""
    digits = "".join(ch for ch in reported if ch.isdigit())
    return not digits or digits == sent or digits in ("86" + sent, "0086" + sent, "86" + sent[1:])


def _failures(messages: Sequence[OutMessage], fail_list: list[Any]) -> dict[int, tuple[str, str]]:
    """``Index`` → (Type, Desc). An entry we cannot place makes the whole answer unreadable.

    Marking an unplaceable failure's recipient ``sent`` would lose a failure silently, and
    guessing would fail the wrong recipient; ``MalformedResponseError`` sends the batch to
    reconciliation instead. ``Index`` wins; when it is missing or contradicts ``Phone``, a phone
    that occurs once in the request still identifies the item.
    """
    phones = [national_phone(m.phone) for m in messages]
    failures: dict[int, tuple[str, str]] = {}
    for entry in fail_list:
        if not isinstance(entry, dict):
            raise MalformedResponseError("BatchAppend FailList holds a non-object entry")
        index = entry.get("Index")
        phone = entry.get("Phone")
        place: int | None = None
        if isinstance(index, bool) or not isinstance(index, int):
            index = -1
        if 0 <= index < len(phones) and (
            not isinstance(phone, str) or _same_phone(phone, phones[index])
        ):
            place = index
        if place is None and isinstance(phone, str):
            matches = [i for i, sent in enumerate(phones) if _same_phone(phone, sent)]
            place = matches[0] if len(matches) == 1 else None
        if place is None:
            raise MalformedResponseError(
                f"BatchAppend FailList entry matches no item (Index {volc_sign.text(index, 20)!r})"
            )
        code = volc_sign.text(entry.get("Type"), 100) or "FailList"
        failures.setdefault(place, (code, volc_sign.text(entry.get("Desc")) or code))
    return failures
