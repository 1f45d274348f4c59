"""Message templates: ``"Hi {name}, your code is {code}"`` filled from a recipient's fields.

A placeholder is a bare field name; ``{{`` and ``}}`` stand for literal braces. Anything
``str.format`` would also accept beyond that (positions, attributes, indexes, conversions,
format specs) is refused: a campaign's text must not depend on Python's formatting
mini-language, and a stray ``{0}`` is far more likely a typo than an intent.

Pure: no I/O. Parsing is cached, since a job-wide template is the same for every recipient.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from teledispatch.errors import Error

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class TemplateError(Error, ValueError):
    """The template cannot be parsed; the message is the rule it breaks."""


@dataclass(frozen=True, slots=True)
class Template:
    #: (literal text, placeholder name or None), in order.
    pieces: tuple[tuple[str, str | None], ...]
    #: Every placeholder name.
    names: frozenset[str]


def has_placeholders(text: str) -> bool:
    """Whether ``text`` needs rendering (a brace of any kind, escaped or not)."""
    return "{" in text or "}" in text


@lru_cache(maxsize=1024)
def parse(text: str) -> Template:
    """``text`` as a template; raises :class:`TemplateError` naming what is wrong."""
    try:
        parsed = list(string.Formatter().parse(text))
    except ValueError as exc:
        raise TemplateError(f"malformed template ({exc}); write {{{{ or }}}} for a brace") from None
    pieces: list[tuple[str, str | None]] = []
    for literal, name, spec, conversion in parsed:
        if name is not None and (spec or conversion or not _NAME.fullmatch(name)):
            shown = name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "")
            raise TemplateError(
                f"unknown placeholder {{{shown}}}: a placeholder is a field name such as "
                "{name}; write {{ or }} for a brace"
            )
        pieces.append((literal, name))
    return Template(tuple(pieces), frozenset(n for _, n in pieces if n is not None))


def _text(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return None
    return str(value)


def render(template: Template, values: Mapping[str, Any]) -> tuple[str, list[tuple[str, str]]]:
    """The filled text and the problems found, as ``(field, rule)``; the text is only usable
    when there are none."""
    out: list[str] = []
    problems: list[tuple[str, str]] = []
    for literal, name in template.pieces:
        out.append(literal)
        if name is None:
            continue
        value = values.get(name)
        if value is None or value == "":
            problems.append((name, f"missing: the template's {{{name}}} has no value here"))
            continue
        text = _text(value)
        if text is None:
            problems.append((name, f"the template's {{{name}}} needs text or a number"))
            continue
        out.append(text)
    return "".join(out), problems
