"""Problems found in a job, and the small checks every channel's rules are built from.

Validation never stops at the first problem: a caller fixing a CSV wants every bad row at once.
Each check appends a :class:`Problem` naming the recipient, the field, the value and the rule.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import phonenumbers
from phonenumbers import PhoneNumberType

from teledispatch.errors import Error
from teledispatch.phone_types import CodeTypes

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


class ValidationFailed(Error, ValueError):
    """A job was refused; nothing of it was enqueued. ``problems`` lists every one found."""

    def __init__(self, problems: Iterable[Problem], *, total: int | None = None) -> None:
        self.problems = list(problems)
        self.total = total if total is not None else len(self.problems)
        shown = "; ".join(str(p) for p in self.problems[:MESSAGE_PROBLEM_LIMIT])
        more = self.total - min(len(self.problems), MESSAGE_PROBLEM_LIMIT)
        suffix = f"; and {more} more" if more > 0 else ""
        noun = "problem" if self.total == 1 else "problems"
        super().__init__(f"job rejected, {self.total} {noun}: {shown}{suffix}")


#: Number types that can receive an SMS: a fixed line cannot, and ``phonenumbers`` cannot
#: tell some countries' mobile and fixed ranges apart (FIXED_LINE_OR_MOBILE).
SMS_TYPES = frozenset({PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE})
#: Number types a voice call can ring: the SMS ones and fixed lines.
VOICE_TYPES = SMS_TYPES | {PhoneNumberType.FIXED_LINE}

#: The rule a value that is no phone number at all breaks.
E164_RULE = "must be a phone number with country code (E.164)"
#: Phone values are quoted in a problem up to this many characters.
PHONE_QUOTE = 24


def normalize_phone(value: Any, types: frozenset[int] | None = None) -> str | None:
    """E.164 with ``+`` of a valid number (of one of ``types`` when given), else None.

    The ``+`` is optional on input; letters are refused (``phonenumbers`` would read them as
    keypad digits), and so are extensions. Exactly :func:`normalize_phone_slow`'s answer. A
    bulk job spends most of its validation in ``phonenumbers.parse``, and nearly every input is
    already ``+`` and ASCII digits, for which :func:`_fast_e164` gives the same answer from
    per-country data taken from ``phonenumbers``' metadata; anything it cannot be sure of goes
    the slow way.
    """
    text = _clean_phone(value)
    if text is None:
        return None
    return _fast_e164(text, types) or _slow_check(text, types)[0]


def normalize_phone_slow(value: Any, types: frozenset[int] | None = None) -> str | None:
    """:func:`normalize_phone` by ``phonenumbers`` alone: the reference the fast path is
    tested against."""
    text = _clean_phone(value)
    return None if text is None else _slow_check(text, types)[0]


def phone_rule(value: Any, types: frozenset[int] | None = None) -> str | None:
    """The rule ``value`` breaks as a phone number, or None when it is a good one."""
    text = _clean_phone(value)
    return E164_RULE if text is None else _slow_check(text, types)[1]


def _clean_phone(value: Any) -> str | None:
    """The text both paths parse: an int as its digits, blanks and hyphens gone, a ``+``."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        return None
    text = value.strip().replace(" ", "").replace("-", "")
    if not text:
        return None
    if not text.startswith("+"):
        text = "+" + text
    return text


def _slow_check(text: str, types: frozenset[int] | None) -> tuple[str | None, str | None]:
    """(E.164, None) for a good number, else (None, the rule it breaks)."""
    if any(char.isalpha() for char in text):
        if not any(char.isdigit() for char in text):
            return None, E164_RULE
        return None, "must not contain letters (they are not read as keypad digits)"
    try:
        number = phonenumbers.parse(text, None)
    except phonenumbers.NumberParseException:
        return None, E164_RULE
    if number.extension is not None:
        return None, "must not have an extension"
    if not phonenumbers.is_possible_number(number):
        return None, E164_RULE
    kind = phonenumbers.number_type(number)
    if kind == PhoneNumberType.UNKNOWN:
        # number_type is UNKNOWN exactly when is_valid_number is False.
        return None, f"is not a valid +{number.country_code} number (wrong length or unused range)"
    if types is not None and kind not in types:
        name = PhoneNumberType.to_string(kind).lower().replace("_", " ")
        return (
            None,
            f"is a {name} number, which this channel cannot reach (see allow_any_number_type)",
        )
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164), None


def _fast_e164(text: str, types: frozenset[int] | None = None) -> str | None:
    """``text`` itself when it is ``+`` and ASCII digits that ``phonenumbers`` would accept
    unchanged as a valid number (of one of ``types``); None when unsure (the caller then asks
    ``phonenumbers``).

    For such text, ``parse(text, None)`` takes the country code as the first 1-3 digits that
    are a known code (none starts with 0), keeps the rest as the national number unless the
    region's national prefix pattern matches its start (then it may strip it: not handled
    here), and ``is_possible_number`` only compares the national number's length with the
    region's possible lengths. The E.164 form is then ``+``, the code and the national number
    (leading zeros kept): the input. Its type is what :class:`CodeTypes` finds.
    """
    digits = text[1:]
    if (
        text[0] != "+"
        or not digits.isascii()
        or not digits.isdigit()
        or digits[0] == "0"
        or len(digits) > _MAX_FAST_DIGITS
    ):
        return None
    for size in (1, 2, 3):
        rule = _country_rule(digits[:size])
        if rule is not None:
            national = digits[size:]
            if len(national) not in rule.lengths:
                return None
            if rule.national_prefix is not None and rule.national_prefix.match(national):
                return None
            kind = rule.types.number_type(national)
            if kind == PhoneNumberType.UNKNOWN or (types is not None and kind not in types):
                return None
            return text
    return None


#: Longest country code (3) plus the longest national number ``parse`` keeps (17).
_MAX_FAST_DIGITS = 20


@dataclass(frozen=True, slots=True)
class _CountryRule:
    """What ``parse`` + ``is_possible_number`` + ``number_type`` look at for one country
    calling code."""

    #: National number lengths (2..17) that ``is_possible_number`` accepts, local-only included.
    lengths: frozenset[int]
    #: The region's ``national_prefix_for_parsing``, or None when it has none.
    national_prefix: re.Pattern[str] | None
    types: CodeTypes


@functools.cache
def _country_rule(code: str) -> _CountryRule | None:
    """The rule for a country calling code written as digits (no leading 0), or None if it
    is not one. Built on first use from ``phonenumbers``' own metadata and checks, so it
    follows the installed metadata version."""
    if len(code) > 1 and code[0] == "0":
        return None
    country_code = int(code)
    if country_code not in phonenumbers.COUNTRY_CODE_TO_REGION_CODE:
        return None
    types = CodeTypes.for_code(country_code)
    # The metadata parse uses: the "main" region of a shared code, "001" for non-geographic.
    region = phonenumbers.region_code_for_country_code(country_code)
    metadata = phonenumbers.PhoneMetadata.metadata_for_region_or_calling_code(country_code, region)
    if metadata is None:
        # A code without metadata: no length is known possible, so the fast path declines
        # (returning None here would let it try a longer code, which ``parse`` never does).
        return _CountryRule(frozenset(), None, types)
    lengths = frozenset(
        length
        for length in range(2, 18)
        if phonenumbers.is_possible_number(
            phonenumbers.PhoneNumber(country_code=country_code, national_number=int("1" * length))
        )
    )
    prefix = metadata.national_prefix_for_parsing
    return _CountryRule(lengths, re.compile(prefix) if prefix else None, types)


def check_phone(
    index: int | None,
    field: str,
    value: Any,
    problems: list[Problem],
    *,
    types: frozenset[int] | None = None,
) -> str | None:
    """A valid number in E.164, of one of ``types`` when given (None: any type)."""
    text = _clean_phone(value)
    phone: str | None
    rule: str | None
    if text is None:
        phone, rule = None, E164_RULE
    else:
        phone = _fast_e164(text, types)
        if phone is None:
            phone, rule = _slow_check(text, types)
    if phone is None:
        shown = value
        if isinstance(value, str) and len(value) > PHONE_QUOTE:
            shown = value[:PHONE_QUOTE] + "..."
        problems.append(Problem(index, field, shown, rule or E164_RULE))
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
    if not value.isascii() and not _encodable(value):
        problems.append(Problem(index, field, value, "must be valid Unicode (no lone surrogate)"))
        return None
    if pattern is not None and not pattern.fullmatch(value):
        problems.append(Problem(index, field, value, pattern_rule))
        return None
    return value


def _encodable(value: str) -> bool:
    """False for text holding a lone surrogate (``"\\ud800"`` in JSON decodes to one): no
    database stores it, and it would fail the job later instead of here."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def check_known_fields(
    index: int | None, fields: dict[str, Any], allowed: frozenset[str], problems: list[Problem]
) -> None:
    for name in fields:
        if name not in allowed:
            known = ", ".join(sorted(allowed))
            problems.append(Problem(index, name, fields[name], f"unknown field (known: {known})"))
