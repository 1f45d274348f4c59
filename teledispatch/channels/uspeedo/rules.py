"""Rules for ``uspeedo.sms`` (USpeedo ``SendBatchUSMSMessage``),
docs/providers.md#uspeedo-batch-sms.

The 500-character message limit applies to the rendered template, which only USpeedo knows; the
one part we can measure is the parameters, so their total length is held to 500. For the
"full-variable" templates USpeedo recommends, the single parameter *is* the message, so this
is then the exact limit.
"""

from __future__ import annotations

from typing import Any

from teledispatch.channels.ids import USPEEDO_SMS
from teledispatch.validation import (
    SMS_TYPES,
    Problem,
    check_known_fields,
    check_phone,
    check_str,
)

MAX_MESSAGE_CHARS = 500


class UspeedoRules:
    channel = USPEEDO_SMS
    fields = frozenset({"phone", "template_id", "sender_id", "template_params"})

    def __init__(self, *, any_number_type: bool = False) -> None:
        self.phone_types = None if any_number_type else SMS_TYPES

    def validate(
        self, index: int, fields: dict[str, Any], problems: list[Problem], now: float
    ) -> dict[str, Any] | None:
        before = len(problems)
        check_known_fields(index, fields, self.fields, problems)
        out: dict[str, Any] = {}
        out["phone"] = check_phone(
            index, "phone", fields.get("phone"), problems, types=self.phone_types
        )
        out["template_id"] = check_str(
            index, "template_id", fields.get("template_id"), problems, min_len=1
        )
        # Required, but may be "": accounts without a registered sender id send an empty one.
        out["sender_id"] = check_str(index, "sender_id", fields.get("sender_id"), problems)
        params = fields.get("template_params")
        if params is not None:
            out["template_params"] = _check_params(index, params, problems)
        if len(problems) > before:
            return None
        return out

    def group_key(self, fields: dict[str, Any]) -> str:
        return ""

    def dedupe_key(self, fields: dict[str, Any]) -> str:
        return str(fields["phone"])


def _check_params(index: int, params: Any, problems: list[Problem]) -> list[str] | None:
    if not isinstance(params, list):
        problems.append(Problem(index, "template_params", params, "must be a list of strings"))
        return None
    ok = True
    for i, param in enumerate(params):
        if not isinstance(param, str):
            problems.append(Problem(index, f"template_params[{i}]", param, "must be a string"))
            ok = False
    if not ok:
        return None
    total = sum(len(p) for p in params)
    if total > MAX_MESSAGE_CHARS:
        problems.append(
            Problem(
                index,
                "template_params",
                params,
                f"must total at most {MAX_MESSAGE_CHARS} characters (got {total})",
            )
        )
        return None
    return list(params)
