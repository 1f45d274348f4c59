"""Volcengine BindAXN rules: each rule with its exact text, every problem reported."""

from __future__ import annotations

from typing import Any

import pytest

from teledispatch.channels.volc.axn_rules import MAX_EXPIRE_TIME, VolcAxnRules
from teledispatch.validation import Problem

RULES = VolcAxnRules()
NOW = 1_700_000_000.0
GOOD = {
    "phone_a": "+86 188 1179 1647",
    "phone_x": "8613120407901",
    "number_pool_no": "NP167092127702825445",
    "expire_time": 1_700_003_600,
}
E164 = "must be a phone number with country code (E.164)"
CN = "must be a Chinese mainland number (+86)"
UNIX = "must be a unix time in whole seconds"
SOON = "must be more than 60 s in the future (now is 1700000000)"
LATE = "must be before 2038-01-01 00:00:00 UTC+8 (2145888000)"


def _validate(fields: dict[str, Any]) -> tuple[dict[str, Any] | None, list[str]]:
    problems: list[Problem] = []
    out = RULES.validate(1, fields, problems, NOW)
    return out, [str(p) for p in problems]


def test_valid_binding_is_normalised_with_phone_from_phone_a() -> None:
    out, problems = _validate(
        {**GOOD, "phone_b": "+8613718578258", "user_data": "u" * 2048, "audio_record_flag": "0"}
    )
    assert problems == []
    assert out == {
        "phone": "+8618811791647",
        "phone_b": "+8613718578258",
        "phone_x": "+8613120407901",
        "number_pool_no": "NP167092127702825445",
        "expire_time": 1_700_003_600,
        "audio_record_flag": 0,
        "user_data": "u" * 2048,
    }


def test_defaults_and_landline_a() -> None:
    out, problems = _validate({**GOOD, "phone_a": "+862131075869", "expire_time": "1700003600"})
    assert problems == []
    assert out is not None
    assert out["audio_record_flag"] == 1 and out["expire_time"] == 1_700_003_600
    assert out["phone"] == "+862131075869"


def test_phone_accepted_for_phone_a_and_output_revalidates() -> None:
    fields = {**GOOD, "phone": GOOD["phone_a"]}
    del fields["phone_a"]
    out, problems = _validate(fields)
    assert problems == [] and out is not None
    again, problems = _validate(out)
    assert problems == [] and again == out


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"phone_a": "1"}, f"recipients[1].phone_a = '1': {E164}"),
        ({"phone_a": None}, f"recipients[1].phone_a = None: {E164}"),
        ({"phone_a": "+14155550100"}, f"recipients[1].phone_a = '+14155550100': {CN}"),
        ({"phone": "+8613700000000"},
         "recipients[1].phone = '+8613700000000': must be the same number as phone_a"),
        ({"phone_b": "+85255311111"}, f"recipients[1].phone_b = '+85255311111': {CN}"),
        ({"phone_x": None}, f"recipients[1].phone_x = None: {E164}"),
        ({"number_pool_no": ""},
         "recipients[1].number_pool_no = '': must be at least 1 characters"),
        ({"number_pool_no": None}, "recipients[1].number_pool_no = None: is required"),
        ({"expire_time": None}, f"recipients[1].expire_time = None: {UNIX}"),
        ({"expire_time": 1.7e9}, f"recipients[1].expire_time = 1700000000.0: {UNIX}"),
        ({"expire_time": True}, f"recipients[1].expire_time = True: {UNIX}"),
        ({"expire_time": 1_700_000_060},
         f"recipients[1].expire_time = 1700000060: {SOON}"),
        ({"expire_time": MAX_EXPIRE_TIME},
         f"recipients[1].expire_time = 2145888000: {LATE}"),
        ({"audio_record_flag": 2}, "recipients[1].audio_record_flag = 2: must be 0 or 1"),
        ({"audio_record_flag": "yes"}, "recipients[1].audio_record_flag = 'yes': must be 0 or 1"),
        ({"audio_record_flag": True}, "recipients[1].audio_record_flag = True: must be 0 or 1"),
        ({"user_data": "u" * 2049}, "must be at most 2048 characters (got 2049)"),
        ({"user_data": 1}, "recipients[1].user_data = 1: must be a string"),
        ({"content": "x"},
         "recipients[1].content = 'x': unknown field (known: audio_record_flag, expire_time, "
         "number_pool_no, phone, phone_a, phone_b, phone_x, user_data)"),
    ],
)  # fmt: skip
def test_each_rule(change: dict[str, Any], expected: str) -> None:
    out, problems = _validate({**GOOD, **change})
    assert out is None
    assert len(problems) == 1
    assert (
        problems[0].endswith(expected) if expected.startswith("must") else problems[0] == expected
    )


def test_expire_time_just_inside_window() -> None:
    out, problems = _validate({**GOOD, "expire_time": 1_700_000_061})
    assert problems == [] and out is not None
    out, problems = _validate({**GOOD, "expire_time": MAX_EXPIRE_TIME - 1})
    assert problems == [] and out is not None


def test_every_problem_reported() -> None:
    problems: list[Problem] = []
    fields = {"phone_a": "x", "expire_time": 5, "audio_record_flag": 9, "zzz": 1}
    assert RULES.validate(4, fields, problems, NOW) is None
    assert [p.field for p in problems] == [
        "zzz", "phone_a", "phone_x", "number_pool_no", "expire_time", "audio_record_flag"
    ]  # fmt: skip
    assert all(p.index == 4 for p in problems)


def test_dedupe_key_is_a_and_x() -> None:
    a, _ = _validate(GOOD)
    b, _ = _validate({**GOOD, "phone_x": "+8613120407902"})
    assert a is not None and b is not None
    assert RULES.dedupe_key(a) == "+8618811791647:+8613120407901"
    assert RULES.dedupe_key(a) != RULES.dedupe_key(b)
