"""Problems found in a job, and the small checks every channel's rules are built from.

Validation never stops at the first problem: a caller fixing a CSV wants every bad row at once.
Each check appends a :class:`Problem` naming the recipient, the field, the value and the rule.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import phonenumbers

#: Problems spelled out in an exception's message; all of them stay on ``.problems``.
MESSAGE_PROBLEM_LIMIT = 50


@dataclass(frozen=True, slots=True)
class Problem:
    #: 0-based recipient index (CSV row numbers are reported by the CSV reader), or None.
    index: int | None
    field: str
    value: Any
    rule: str

    def __str__(self) -> str:
        where = f"recipients[{self.index}].{self.field}" if self.index is not None else self.field
        value = self.value
        if isinstance(value, str) and len(value) > 60:
            value = value[:57] + "..."
        return f"{where} = {value!r}: {self.rule}"


class ValidationFailed(ValueError):
    """A job was refused; nothing of it was enqueued. ``problems`` lists every one found."""

    def __init__(self, problems: Iterable[Problem], *, total: int | None = None) -> None:
        self.problems = list(problems)
        self.total = total if total is not None else len(self.problems)
        shown = "; ".join(str(p) for p in self.problems[:MESSAGE_PROBLEM_LIMIT])
        more = self.total - min(len(self.problems), MESSAGE_PROBLEM_LIMIT)
        suffix = f"; and {more} more" if more > 0 else ""
        noun = "problem" if self.total == 1 else "problems"
        super().__init__(f"job rejected, {self.total} {noun}: {shown}{suffix}")


def normalize_phone(value: Any) -> str | None:
    """E.164 with ``+``; the ``+`` is optional on input. None if not a possible number."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        return None
    text = value.strip().replace(" ", "").replace("-", "")
    if not text:
        return None
    if not text.startswith("+"):
        text = "+" + text
    try:
        number = phonenumbers.parse(text, None)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def check_phone(index: int | None, field: str, value: Any, problems: list[Problem]) -> str | None:
    phone = normalize_phone(value)
    if phone is None:
        problems.append(
            Problem(index, field, value, "must be a phone number with country code (E.164)")
        )
    return phone


def check_str(
    index: int | None,
    field: str,
    value: Any,
    problems: list[Problem],
    *,
    min_len: int = 0,
    max_len: int | None = None,
    pattern: re.Pattern[str] | None = None,
    pattern_rule: str = "",
) -> str | None:
    """A string within length bounds (and matching ``pattern`` when given)."""
    if value is None:
        problems.append(Problem(index, field, value, "is required"))
        return None
    if not isinstance(value, str):
        problems.append(Problem(index, field, value, "must be a string"))
        return None
    if len(value) < min_len or (max_len is not None and len(value) > max_len):
        if max_len is None:
            rule = f"must be at least {min_len} characters"
        elif min_len:
            rule = f"must be {min_len}–{max_len} characters (got {len(value)})"
        else:
            rule = f"must be at most {max_len} characters (got {len(value)})"
        problems.append(Problem(index, field, value, rule))
        return None
    if pattern is not None and not pattern.fullmatch(value):
        problems.append(Problem(index, field, value, pattern_rule))
        return None
    return value


def check_known_fields(
    index: int | None, fields: dict[str, Any], allowed: frozenset[str], problems: list[Problem]
) -> None:
    for name in fields:
        if name not in allowed:
            known = ", ".join(sorted(allowed))
            problems.append(Problem(index, name, fields[name], f"unknown field (known: {known})"))
