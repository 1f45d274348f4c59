"""Template parsing and rendering: placeholders, escapes and every kind of error."""

from __future__ import annotations

import pytest

from teledispatch.templates import TemplateError, has_placeholders, parse, render


def test_fills_placeholders_from_fields() -> None:
    t = parse("Hi {name}, your code is {code}")
    assert t.names == {"name", "code"}
    assert render(t, {"name": "Ana", "code": 123456}) == ("Hi Ana, your code is 123456", [])


def test_doubled_braces_are_literal() -> None:
    t = parse("{{not}} a {x}}}")
    assert t.names == {"x"}
    assert render(t, {"x": "y"}) == ("{not} a y}", [])


def test_plain_text_has_no_placeholders() -> None:
    assert not has_placeholders("plain")
    assert has_placeholders("a {{ b")
    assert render(parse("plain"), {}) == ("plain", [])


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        ("Hi {name", "malformed template"),
        ("Hi name}", "malformed template"),
        ("{a{b}}", "malformed template"),
        ("{0}", "unknown placeholder {0}"),
        ("{}", "unknown placeholder {}"),
        ("{a.b}", "unknown placeholder {a.b}"),
        ("{a[0]}", "unknown placeholder {a[0]}"),
        ("{a!r}", "unknown placeholder {a!r}"),
        ("{a:>5}", "unknown placeholder {a:>5}"),
        ("{ a }", "unknown placeholder { a }"),
    ],
)
def test_bad_templates_say_why(text: str, rule: str) -> None:
    with pytest.raises(TemplateError) as exc:
        parse(text)
    assert str(exc.value).startswith(rule)


def test_missing_and_unusable_values_are_named() -> None:
    _, problems = render(parse("{a} {b} {c} {d}"), {"a": "", "c": ["x"], "d": True})
    assert [field for field, _ in problems] == ["a", "b", "c", "d"]
    assert "missing" in problems[0][1] and "missing" in problems[1][1]
    assert "text or a number" in problems[2][1]
