"""Door 4: phone numbers. Any string (or int) normalises to E.164 or to a validation problem,
and the fast path agrees with ``phonenumbers`` (``normalize_phone_slow``) on every input:
the differential property of tests/unit/test_phone_fast_path.py, driven by coverage.

Input layout: the number types asked for, how to build the value, then its characters.
"""

from __future__ import annotations

from typing import Any

from teledispatch.validation import (
    SMS_TYPES,
    VOICE_TYPES,
    Problem,
    check_phone,
    normalize_phone,
    normalize_phone_slow,
    phone_rule,
)
from tests.fuzz.reader import Reader

#: Characters of phone numbers as people and spreadsheets write them.
ALPHABET = "+01234567890123456789 -().#*x٠١٢۳०१０１²\u00a0\u200b\ud800ab"
TYPES = (None, SMS_TYPES, VOICE_TYPES)


def _value(r: Reader) -> Any:
    mode = r.byte() % 4
    if mode == 0:
        return r.uint(8)
    if mode == 1:
        return r.rest().decode("utf-8", "replace")
    # Mostly digits after a likely country code: deep into phonenumbers' metadata.
    prefix = r.pick(("+", "", "+86", "86", "+1", "+44", "+7", "+39", "+800", "00"))
    return prefix + "".join(r.pick(ALPHABET) for _ in range(r.below(20)))


def check(data: bytes) -> None:
    r = Reader(data)
    types = r.pick(TYPES)
    value = _value(r)
    fast = normalize_phone(value, types)
    slow = normalize_phone_slow(value, types)
    assert fast == slow, (value, fast, slow)
    rule = phone_rule(value, types)
    assert (rule is None) == (slow is not None), (value, rule, slow)
    problems: list[Problem] = []
    checked = check_phone(0, "phone", value, problems, types=types)
    assert checked == slow and len(problems) == (checked is None), (value, checked, problems)
    if slow is not None:
        assert slow[0] == "+" and slow[1:].isascii() and slow[1:].isdigit(), slow


if __name__ == "__main__":
    from tests.fuzz.runner import main

    main("phones")
