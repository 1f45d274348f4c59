"""USpeedo rules: each rule with its exact text, every problem reported at once."""

from __future__ import annotations

from typing import Any

import pytest

from teledispatch.channels.uspeedo.rules import UspeedoRules
from teledispatch.validation import Problem

RULES = UspeedoRules()
E164 = "must be a phone number with country code (E.164)"
GOOD = {"phone": "+86 138-0013-8000", "template_id": "t1", "sender_id": "USpeedo"}


def _validate(fields: dict[str, Any], index: int = 3) -> tuple[dict[str, Any] | None, list[str]]:
    problems: list[Problem] = []
    out = RULES.validate(index, fields, problems, 0.0)
    return out, [str(p) for p in problems]


def test_valid_recipient_is_normalised() -> None:
    out, problems = _validate({**GOOD, "template_params": ["123456", "5"]})
    assert problems == []
    assert out == {
        "phone": "+8613800138000",
        "template_id": "t1",
        "sender_id": "USpeedo",
        "template_params": ["123456", "5"],
    }


def test_params_optional_and_empty_sender_allowed() -> None:
    out, problems = _validate({**GOOD, "sender_id": ""})
    assert problems == []
    assert out is not None and "template_params" not in out


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"phone": "12"}, "recipients[3].phone = '12': " + E164),
        ({"phone": None}, "recipients[3].phone = None: " + E164),
        ({"template_id": ""}, "recipients[3].template_id = '': must be at least 1 characters"),
        ({"template_id": 7}, "recipients[3].template_id = 7: must be a string"),
        ({"template_id": None}, "recipients[3].template_id = None: is required"),
        ({"sender_id": None}, "recipients[3].sender_id = None: is required"),
        ({"template_params": "123"},
         "recipients[3].template_params = '123': must be a list of strings"),
        ({"template_params": ["a", 5]}, "recipients[3].template_params[1] = 5: must be a string"),
        ({"template_params": ["x" * 300, "y" * 201]},
         "must total at most 500 characters (got 501)"),
        ({"content": "hi"}, "recipients[3].content = 'hi': unknown field (known: phone, sender_id, "
                            "template_id, template_params)"),
    ],
)  # fmt: skip
def test_each_rule(change: dict[str, Any], expected: str) -> None:
    out, problems = _validate({**GOOD, **change})
    assert out is None
    assert len(problems) == 1
    assert (
        problems[0].endswith(expected) if expected.startswith("must") else problems[0] == expected
    )


def test_params_at_limit_pass() -> None:
    out, problems = _validate({**GOOD, "template_params": ["x" * 250, "y" * 250]})
    assert problems == [] and out is not None


def test_every_problem_reported() -> None:
    problems: list[Problem] = []
    fields = {"phone": "x", "template_id": 1, "template_params": [1, 2], "extra": 0}
    assert RULES.validate(0, fields, problems, 0.0) is None
    assert {p.field for p in problems} == {
        "extra",
        "phone",
        "template_id",
        "sender_id",
        "template_params[0]",
        "template_params[1]",
    }
    assert all(p.index == 0 for p in problems)


def test_dedupe_key_is_phone() -> None:
    out, _ = _validate(GOOD)
    assert out is not None
    assert RULES.dedupe_key(out) == "+8613800138000"
