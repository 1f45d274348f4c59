"""Rules for ``volc.vms.append`` (Volcengine VMS ``BatchAppend``),
docs/providers.md#volcengine-vms-batchappend.

VMS calls Chinese mainland numbers only, so a number outside +86 is refused here rather than
coming back later as ``INVALID_PHONE_FORMAT``. ``phone_param_json`` / ``sms_param_json`` may be
given as a JSON object or as a string holding one; either way the worker receives the compact
string the provider expects, and the 2048-character limit applies to that string.
"""

from __future__ import annotations

import json
from typing import Any

from teledispatch.channels.ids import VOLC_VMS_APPEND
from teledispatch.validation import (
    VOICE_TYPES,
    Problem,
    check_known_fields,
    check_phone,
    check_str,
)

MAX_PHONE_PARAM = 2048
MAX_TTS_CONTENT = 250
MAX_EXT = 250
CN_RULE = "must be a Chinese mainland number (+86)"


def check_cn_phone(
    index: int,
    field: str,
    value: Any,
    problems: list[Problem],
    *,
    types: frozenset[int] | None = None,
) -> str | None:
    """E.164 via ``check_phone``, then +86 only (E.164 country codes are prefix-free)."""
    phone = check_phone(index, field, value, problems, types=types)
    if phone is not None and not phone.startswith("+86"):
        problems.append(Problem(index, field, value, CN_RULE))
        return None
    return phone


def check_json_object(
    index: int, field: str, value: Any, problems: list[Problem], max_len: int | None
) -> str | None:
    if isinstance(value, dict):
        try:
            text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
        except (TypeError, ValueError):
            problems.append(Problem(index, field, value, "must be a JSON object"))
            return None
    elif isinstance(value, str):
        try:
            parsed = json.loads(value)
        except (ValueError, RecursionError):
            parsed = None
        if not isinstance(parsed, dict):
            problems.append(
                Problem(index, field, value, "must be a JSON object or a string holding one")
            )
            return None
        text = value
    else:
        problems.append(
            Problem(index, field, value, "must be a JSON object or a string holding one")
        )
        return None
    return check_str(index, field, text, problems, max_len=max_len)


class VolcVmsRules:
    channel = VOLC_VMS_APPEND
    fields = frozenset(
        {"phone", "task_open_id", "phone_param", "phone_param_json", "sms_param_json",
         "tts_content", "ext"}
    )  # fmt: skip

    def __init__(self, *, any_number_type: bool = False) -> None:
        # A voice call rings fixed lines too.
        self.phone_types = None if any_number_type else VOICE_TYPES

    def validate(
        self, index: int, fields: dict[str, Any], problems: list[Problem], now: float
    ) -> dict[str, Any] | None:
        before = len(problems)
        check_known_fields(index, fields, self.fields, problems)
        out: dict[str, Any] = {}
        out["phone"] = check_cn_phone(
            index, "phone", fields.get("phone"), problems, types=self.phone_types
        )
        # 200: the longest group key the message table stores.
        out["task_open_id"] = check_str(
            index, "task_open_id", fields.get("task_open_id"), problems, min_len=1, max_len=200
        )
        if fields.get("phone_param") is not None:
            out["phone_param"] = check_str(
                index, "phone_param", fields["phone_param"], problems, max_len=MAX_PHONE_PARAM
            )
        for name, limit in (("phone_param_json", MAX_PHONE_PARAM), ("sms_param_json", None)):
            if fields.get(name) is not None:
                out[name] = check_json_object(index, name, fields[name], problems, limit)
        if fields.get("tts_content") is not None:
            out["tts_content"] = check_str(
                index, "tts_content", fields["tts_content"], problems, max_len=MAX_TTS_CONTENT
            )
        if fields.get("ext") is not None:
            out["ext"] = check_str(index, "ext", fields["ext"], problems, max_len=MAX_EXT)
        if len(problems) > before:
            return None
        return out

    def group_key(self, fields: dict[str, Any]) -> str:
        return str(fields["task_open_id"])

    def dedupe_key(self, fields: dict[str, Any]) -> str:
        # The same number may be appended to two tasks; within one task it is a duplicate.
        return f"{fields['task_open_id']}:{fields['phone']}"
