"""Numbers must exist: letters refused, invalid numbers refused, SMS only to numbers that take one.

The issue's own inputs (a CSV row ``+86133bad`` stored as ``+86133223``; ``+8613800`` and
two others accepted on length alone) and the rules each channel applies, with the account
setting that relaxes the number type.
"""

from __future__ import annotations

from typing import Any

import pytest

from teledispatch.channels.nxcloud.rules import NxcloudRules
from teledispatch.channels.registry import rules_for
from teledispatch.channels.uspeedo.rules import UspeedoRules
from teledispatch.channels.volc.axn_rules import VolcAxnRules
from teledispatch.channels.volc.vms_rules import VolcVmsRules
from teledispatch.producer.lookup import lookup
from teledispatch.producer.submit import validate_stream
from teledispatch.validation import (
    SMS_TYPES,
    Problem,
    ValidationFailed,
    check_phone,
    normalize_phone,
)
from tests.support import make_settings

LANDLINE = "+862131075869"  # Shanghai fixed line
MOBILE = "+8613800138000"
INVALID_RULE = "is not a valid +86 number (wrong length or unused range)"


def _problems(value: Any, types: frozenset[int] | None = None) -> list[str]:
    problems: list[Problem] = []
    assert check_phone(3, "phone", value, problems, types=types) is None
    return [str(p) for p in problems]


def test_letters_are_refused_not_read_as_keypad_digits() -> None:
    assert normalize_phone("+86133bad") is None
    assert _problems("+86133bad") == [
        "recipients[3].phone = '+86133bad': "
        "must not contain letters (they are not read as keypad digits)"
    ]
    # An extension written in letters is refused, not silently dropped.
    assert normalize_phone("+8613800138000 ext 12") is None


def test_an_extension_is_refused_not_dropped() -> None:
    assert normalize_phone("+8613800138000#12") is None
    assert _problems("+8613800138000#12") == [
        "recipients[3].phone = '+8613800138000#12': must not have an extension"
    ]


@pytest.mark.parametrize("value", ["+8613800", "+861380013800", "+86138001380001"])
def test_numbers_that_cannot_exist_are_refused(value: str) -> None:
    assert normalize_phone(value) is None
    assert _problems(value) == [f"recipients[3].phone = {value!r}: {INVALID_RULE}"]


def test_a_long_value_is_quoted_by_its_start_only() -> None:
    value = "+86" + "1" * 1500
    (problem,) = _problems(value)
    assert problem.startswith("recipients[3].phone = '+86111111111111111111111...': ")
    assert len(problem) < 120


def test_sms_needs_a_number_that_takes_one() -> None:
    assert normalize_phone(LANDLINE) == LANDLINE
    assert normalize_phone(LANDLINE, SMS_TYPES) is None
    assert _problems(LANDLINE, SMS_TYPES) == [
        f"recipients[3].phone = {LANDLINE!r}: is a fixed line number, "
        "which this channel cannot reach (see allow_any_number_type)"
    ]
    assert normalize_phone("+80012345678", SMS_TYPES) is None  # international freephone


@pytest.mark.parametrize(
    ("rules", "fields", "accepted"),
    [
        (NxcloudRules(), {"phone": LANDLINE, "content": "hi"}, False),
        (UspeedoRules(), {"phone": LANDLINE, "template_id": "T", "sender_id": ""}, False),
        (VolcVmsRules(), {"phone": LANDLINE, "task_open_id": "t"}, True),
        (
            VolcAxnRules(),
            {
                "phone_a": LANDLINE,
                "phone_b": "+861012345678",
                "phone_x": MOBILE,
                "number_pool_no": "NP1",
                "expire_time": 2_000_000_000,
            },
            True,
        ),
    ],
)
def test_sms_channels_refuse_fixed_lines_voice_channels_call_them(
    rules: Any, fields: dict[str, Any], accepted: bool
) -> None:
    problems: list[Problem] = []
    out = rules.validate(0, fields, problems, 1_700_000_000.0)
    assert (out is not None) is accepted, problems
    relaxed = type(rules)(any_number_type=True)
    assert relaxed.validate(0, fields, [], 1_700_000_000.0) is not None


def test_voice_channels_still_refuse_invalid_numbers() -> None:
    problems: list[Problem] = []
    assert (
        VolcVmsRules().validate(0, {"phone": "+8613800", "task_open_id": "t"}, problems, 0.0)
        is None
    )
    assert [p.rule for p in problems] == [INVALID_RULE]


def test_the_account_setting_relaxes_the_type_not_the_validity(db_url: str) -> None:
    strict = make_settings(db_url)
    relaxed = make_settings(db_url, allow_any_number_type=True)
    assert not strict.account("nx").allow_any_number_type
    assert rules_for("nxcloud.sms", any_number_type=True) is not rules_for("nxcloud.sms")
    landline = [{"phone": LANDLINE, "content": "hi"}]
    with pytest.raises(ValidationFailed) as exc:
        validate_stream("nx", landline, cfg=strict)
    assert "is a fixed line number" in str(exc.value)
    assert validate_stream("nx", landline, cfg=relaxed) == 1
    with pytest.raises(ValidationFailed, match="is not a valid"):
        validate_stream("nx", [{"phone": "+8613800", "content": "hi"}], cfg=relaxed)


def test_lookup_of_a_national_number_says_the_country_code_is_missing(db_url: str) -> None:
    cfg = make_settings(db_url)
    with pytest.raises(ValidationFailed) as exc:
        lookup(phone="13800138000", cfg=cfg)
    (problem,) = exc.value.problems
    assert (problem.field, problem.value) == ("phone", "13800138000")
    assert problem.rule.startswith("has no country code")
    # Written with its country code (with or without the +), it is a plain lookup.
    assert lookup(phone="+86 138 0013 8000", cfg=cfg) == []
    assert lookup(phone="8613800138000", cfg=cfg) == []
    # A + number that is no valid number is still looked up as given (rows stored before
    # numbers were checked).
    assert lookup(phone="+8613800", cfg=cfg) == []
