"""Rules for ``volc.axn.bind`` (Volcengine ``BindAXN``), from docs/providers.md#volcengine-bindaxn.

The recipient of a binding is number A, so a recipient names it ``phone_a``; the result's
``phone`` is that number in E.164, which is what the message table and the adapter use.
``phone`` is also accepted in place of ``phone_a`` (a CSV's phone column, or a recipient that
was validated once already); given both, they must be the same number.

``expire_time`` and ``audio_record_flag`` may be integers or strings of digits (CSV cells) and
come out as integers. ``phone_x``, ``number_pool_no`` and ``expire_time`` are required: this
operation binds to a *specified* X from a named pool, for a bounded time.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from teledispatch.channels.ids import VOLC_AXN_BIND
from teledispatch.channels.volc.vms_rules import check_cn_phone
from teledispatch.validation import VOICE_TYPES, Problem, check_known_fields, check_str

#: The gateway's minimum lead time for ``ExpireTime``.
MIN_LEAD_S = 60
#: 2038-01-01 00:00:00 Beijing time (UTC+8): the documented upper bound, read in the
#: provider's time zone because that is the stricter reading.
MAX_EXPIRE_TIME = 2_145_888_000
MAX_USER_DATA = 2048


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit() and len(value.strip()) < 12:
        return int(value.strip())
    return None


def expire_time_of(fields: Mapping[str, Any]) -> int | None:
    """``expire_time`` as unix seconds, or None when it is not a whole number of seconds.

    The one parser of the field: the rules check it at enqueue, the adapter again at send."""
    return _int(fields.get("expire_time"))


class VolcAxnRules:
    channel = VOLC_AXN_BIND
    fields = frozenset(
        {"phone", "phone_a", "phone_b", "phone_x", "number_pool_no", "expire_time",
         "audio_record_flag", "user_data"}
    )  # fmt: skip

    def __init__(self, *, any_number_type: bool = False) -> None:
        # A and B are the parties' own phones, which a call through X rings: mobile or fixed.
        # X is the provider's number from the pool: any valid type.
        self.phone_types = None if any_number_type else VOICE_TYPES

    def validate(
        self, index: int, fields: dict[str, Any], problems: list[Problem], now: float
    ) -> dict[str, Any] | None:
        before = len(problems)
        check_known_fields(index, fields, self.fields, problems)
        out: dict[str, Any] = {}
        out["phone"] = self._phone_a(index, fields, problems)
        if fields.get("phone_b") is not None:
            out["phone_b"] = check_cn_phone(
                index, "phone_b", fields["phone_b"], problems, types=self.phone_types
            )
        out["phone_x"] = check_cn_phone(index, "phone_x", fields.get("phone_x"), problems)
        out["number_pool_no"] = check_str(
            index, "number_pool_no", fields.get("number_pool_no"), problems, min_len=1
        )
        out["expire_time"] = self._expire_time(index, fields.get("expire_time"), problems, now)
        flag = fields.get("audio_record_flag", 1)
        out["audio_record_flag"] = _int(flag)
        if out["audio_record_flag"] not in (0, 1):
            problems.append(Problem(index, "audio_record_flag", flag, "must be 0 or 1"))
        if fields.get("user_data") is not None:
            out["user_data"] = check_str(
                index, "user_data", fields["user_data"], problems, max_len=MAX_USER_DATA
            )
        if len(problems) > before:
            return None
        return out

    def _phone_a(self, index: int, fields: dict[str, Any], problems: list[Problem]) -> str | None:
        if fields.get("phone_a") is None and fields.get("phone") is not None:
            return check_cn_phone(index, "phone", fields["phone"], problems, types=self.phone_types)
        phone_a = check_cn_phone(
            index, "phone_a", fields.get("phone_a"), problems, types=self.phone_types
        )
        if phone_a is not None and fields.get("phone") is not None:
            other = check_cn_phone(
                index, "phone", fields["phone"], problems, types=self.phone_types
            )
            if other is not None and other != phone_a:
                problems.append(
                    Problem(index, "phone", fields["phone"], "must be the same number as phone_a")
                )
                return None
        return phone_a

    def _expire_time(
        self, index: int, value: Any, problems: list[Problem], now: float
    ) -> int | None:
        seconds = _int(value)
        if seconds is None:
            problems.append(
                Problem(index, "expire_time", value, "must be a unix time in whole seconds")
            )
            return None
        if seconds <= now + MIN_LEAD_S:
            problems.append(
                Problem(
                    index,
                    "expire_time",
                    value,
                    f"must be more than {MIN_LEAD_S} s in the future (now is {int(now)})",
                )
            )
            return None
        if seconds >= MAX_EXPIRE_TIME:
            problems.append(
                Problem(
                    index,
                    "expire_time",
                    value,
                    f"must be before 2038-01-01 00:00:00 UTC+8 ({MAX_EXPIRE_TIME})",
                )
            )
            return None
        return seconds

    def group_key(self, fields: dict[str, Any]) -> str:
        return ""

    def dedupe_key(self, fields: dict[str, Any]) -> str:
        # One A bound twice to the same X is one binding; the same A on two Xs is two.
        return f"{fields['phone']}:{fields['phone_x']}"
