"""Volcengine BatchAppend rules: each rule with its exact text, every problem reported."""

from __future__ import annotations

from typing import Any

import pytest

from teledispatch.channels.volc.vms_rules import VolcVmsRules
from teledispatch.validation import Problem

RULES = VolcVmsRules()
GOOD = {"phone": "8613800138000", "task_open_id": "106d2984fbf0480480cbc8b98d609592"}
JSON_RULE = "must be a JSON object or a string holding one"


def _validate(fields: dict[str, Any]) -> tuple[dict[str, Any] | None, list[str]]:
    problems: list[Problem] = []
    out = RULES.validate(5, fields, problems, 0.0)
    return out, [str(p) for p in problems]


def test_valid_recipient_is_normalised() -> None:
    out, problems = _validate(
        {
            **GOOD,
            "phone_param": "x" * 2048,
            "phone_param_json": {"name": "张三"},
            "sms_param_json": '{"code": "1"}',
            "tts_content": "t" * 250,
            "ext": "e" * 250,
        }
    )
    assert problems == []
    assert out == {
        "phone": "+8613800138000",
        "task_open_id": GOOD["task_open_id"],
        "phone_param": "x" * 2048,
        "phone_param_json": '{"name":"张三"}',
        "sms_param_json": '{"code": "1"}',
        "tts_content": "t" * 250,
        "ext": "e" * 250,
    }


def test_landline_accepted() -> None:
    out, problems = _validate({**GOOD, "phone": "+86 21 3107 5869"})
    assert problems == [] and out is not None and out["phone"] == "+862131075869"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"phone": "abc"},
         "recipients[5].phone = 'abc': must be a phone number with country code (E.164)"),
        ({"phone": "+85255311111"},
         "recipients[5].phone = '+85255311111': must be a Chinese mainland number (+86)"),
        ({"task_open_id": None}, "recipients[5].task_open_id = None: is required"),
        ({"task_open_id": ""}, "recipients[5].task_open_id = '': must be 1–200 characters (got 0)"),
        ({"task_open_id": "t" * 201}, "must be 1–200 characters (got 201)"),
        ({"phone_param": "x" * 2049}, "must be at most 2048 characters (got 2049)"),
        ({"phone_param": 3}, "recipients[5].phone_param = 3: must be a string"),
        ({"phone_param_json": "[1]"}, f"recipients[5].phone_param_json = '[1]': {JSON_RULE}"),
        ({"phone_param_json": "{bad"}, f"recipients[5].phone_param_json = '{{bad': {JSON_RULE}"),
        ({"phone_param_json": 5}, f"recipients[5].phone_param_json = 5: {JSON_RULE}"),
        ({"phone_param_json": {"k": "v" * 2050}}, "must be at most 2048 characters (got 2058)"),
        ({"sms_param_json": "null"}, f"recipients[5].sms_param_json = 'null': {JSON_RULE}"),
        ({"tts_content": "t" * 251}, "must be at most 250 characters (got 251)"),
        ({"ext": "e" * 251}, "must be at most 250 characters (got 251)"),
        ({"content": "x"},
         "recipients[5].content = 'x': unknown field (known: ext, phone, phone_param, "
         "phone_param_json, sms_param_json, task_open_id, tts_content)"),
    ],
)  # fmt: skip
def test_each_rule(change: dict[str, Any], expected: str) -> None:
    out, problems = _validate({**GOOD, **change})
    assert out is None
    assert len(problems) == 1
    assert (
        problems[0].endswith(expected) if expected.startswith("must") else problems[0] == expected
    )


def test_every_problem_reported() -> None:
    problems: list[Problem] = []
    fields = {"phone": "+14155550100", "tts_content": "t" * 300, "ext": 1, "bogus": 1}
    assert RULES.validate(2, fields, problems, 0.0) is None
    assert [p.field for p in problems] == ["bogus", "phone", "task_open_id", "tts_content", "ext"]
    assert all(p.index == 2 for p in problems)


def test_dedupe_key_is_per_task() -> None:
    a, _ = _validate(GOOD)
    b, _ = _validate({**GOOD, "task_open_id": "other"})
    assert a is not None and b is not None
    assert RULES.dedupe_key(a) == f"{GOOD['task_open_id']}:+8613800138000"
    assert RULES.dedupe_key(a) != RULES.dedupe_key(b)
