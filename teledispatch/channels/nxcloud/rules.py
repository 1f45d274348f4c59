"""Rules for ``nxcloud.sms`` (NXCloud ``multi/mt``), docs/providers.md#nxcloud-batch-sms."""

from __future__ import annotations

import re
from typing import Any

from teledispatch.channels.ids import NXCLOUD_SMS
from teledispatch.validation import (
    SMS_TYPES,
    Problem,
    check_known_fields,
    check_phone,
    check_str,
)

_SOURCE = re.compile(r"[0-9A-Za-z]{1,20}")
_URL = re.compile(r"https?://\S+")


class NxcloudRules:
    channel = NXCLOUD_SMS
    fields = frozenset(
        {"phone", "content", "source_address", "ext", "short_link", "link_verbose", "dr_url"}
    )

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
        out["content"] = check_str(
            index, "content", fields.get("content"), problems, min_len=1, max_len=1000
        )
        if fields.get("source_address") is not None:
            out["source_address"] = check_str(
                index,
                "source_address",
                fields["source_address"],
                problems,
                pattern=_SOURCE,
                pattern_rule="must be 1–20 letters or digits",
            )
        if fields.get("ext") is not None:
            out["ext"] = check_str(index, "ext", fields["ext"], problems, max_len=255)
        if fields.get("dr_url") is not None:
            out["dr_url"] = check_str(
                index,
                "dr_url",
                fields["dr_url"],
                problems,
                max_len=500,
                pattern=_URL,
                pattern_rule="must be an http(s) URL",
            )
        for flag in ("short_link", "link_verbose"):
            if fields.get(flag) is not None:
                value = fields[flag]
                if value not in (0, 1) or isinstance(value, float):
                    problems.append(Problem(index, flag, value, "must be 0 or 1"))
                else:
                    out[flag] = int(value)
        if len(problems) > before:
            return None
        return out

    def group_key(self, fields: dict[str, Any]) -> str:
        return ""

    def dedupe_key(self, fields: dict[str, Any]) -> str:
        return str(fields["phone"])
