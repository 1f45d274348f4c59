"""The phone fast path answers exactly as ``phonenumbers`` does, or not at all.

``normalize_phone`` skips ``phonenumbers.parse`` (and ``number_type``) for ``+`` and ASCII
digits; these tests compare it with :func:`normalize_phone_slow` (``phonenumbers`` alone) on
random inputs around every country calling code: every national number length, national
prefixes, leading zeros, unknown codes, and arbitrary text; and on every region's example
number of every type and random mutations of them, for each set of accepted number types. They
also check that the fast path does answer for the common forms, so that a fast path that never
answers (always equal, never fast) fails here.
"""

from __future__ import annotations

import random
import re
import string
from collections.abc import Iterator

import phonenumbers
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from teledispatch.validation import (
    SMS_TYPES,
    VOICE_TYPES,
    Problem,
    _country_rule,
    _fast_e164,
    check_phone,
    normalize_phone,
    normalize_phone_slow,
)

COUNTRY_CODES = sorted(phonenumbers.COUNTRY_CODE_TO_REGION_CODE)
#: Every set of accepted types the channels use; None is "any valid number".
TYPE_SETS: tuple[frozenset[int] | None, ...] = (None, SMS_TYPES, VOICE_TYPES)
NUMBER_TYPES = [t for t in phonenumbers.PhoneNumberType.values() if t != 99]


def _example_numbers() -> list[str]:
    """Every region's example number of every type, and every non-geographic code's, E.164."""
    found: set[str] = set()
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        for kind in NUMBER_TYPES:
            number = phonenumbers.example_number_for_type(region, kind)
            if number is not None:
                found.add(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))
    for code in sorted(phonenumbers.COUNTRY_CODES_FOR_NON_GEO_REGIONS):
        number = phonenumbers.example_number_for_non_geo_entity(code)
        if number is not None:
            found.add(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))
    return sorted(found)


EXAMPLES = _example_numbers()
PROPERTY = settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _metadata(code: int) -> phonenumbers.PhoneMetadata:
    region = phonenumbers.region_code_for_country_code(code)
    metadata = phonenumbers.PhoneMetadata.metadata_for_region_or_calling_code(code, region)
    assert metadata is not None
    return metadata


def _digits(rng: random.Random, n: int) -> str:
    return "".join(rng.choice(string.digits) for _ in range(n))


def _differential_inputs(rng: random.Random) -> Iterator[str]:
    """Tens of thousands of ``+``-digit strings around every country calling code."""
    for code in COUNTRY_CODES:
        cc = str(code)
        metadata = _metadata(code)
        for length in range(0, 21):
            for _ in range(12):
                yield f"+{cc}{_digits(rng, length)}"
        # Every leading digit pair, at the lengths the region accepts and one either side.
        rule = _country_rule(cc)
        assert rule is not None
        lengths = sorted(rule.lengths) or [8]
        for start in range(100):
            length = rng.choice([*lengths, lengths[0] - 1, lengths[-1] + 1])
            yield f"+{cc}{start:02d}{_digits(rng, max(0, length - 2))}"
        # National prefixes: the region's own, then the region's example numbers behind it.
        prefixes = {metadata.national_prefix or "", "0", "1", "00", "01", "8", "11", "179"}
        for prefix in prefixes:
            for length in lengths:
                yield f"+{cc}{prefix}{_digits(rng, length)}"
                yield f"+{cc}{prefix}{_digits(rng, max(0, length - len(prefix)))}"
        for desc in (metadata.general_desc, metadata.fixed_line, metadata.mobile):
            example_number = desc.example_number if desc is not None else None
            if example_number:
                yield f"+{cc}{example_number}"
                for prefix in prefixes:
                    yield f"+{cc}{prefix}{example_number}"
    # Codes that are not codes, and leading zeros in place of a code.
    for _ in range(3000):
        yield "+" + _digits(rng, rng.randint(1, 22))
        yield "+0" + _digits(rng, rng.randint(1, 18))


def test_fast_path_equals_phonenumbers_around_every_country_code() -> None:
    rng = random.Random(20240611)
    answered = refused = checked = 0
    for i, text in enumerate(_differential_inputs(rng)):
        types = TYPE_SETS[i % len(TYPE_SETS)]
        slow = normalize_phone_slow(text, types)
        fast = _fast_e164(text, types)
        assert fast is None or fast == slow, (text, types, fast, slow)
        assert normalize_phone(text, types) == slow, (text, types)
        checked += 1
        if fast is not None:
            answered += 1
        elif slow is not None:
            refused += 1
    assert checked > 50_000
    # Random digits are seldom valid numbers; of those that are, the fast path takes most and
    # leaves the rest (national prefixes) to phonenumbers.
    assert answered > 2_000
    assert refused > 200


def test_fast_path_equals_phonenumbers_on_every_example_number() -> None:
    assert len(EXAMPLES) > 800  # ~245 regions, a few types each
    answered = 0
    for text in EXAMPLES:
        for types in TYPE_SETS:
            slow = normalize_phone_slow(text, types)
            fast = _fast_e164(text, types)
            assert fast is None or fast == slow, (text, types, fast, slow)
            assert normalize_phone(text, types) == slow, (text, types)
            answered += fast is not None
        # An example number is valid: phonenumbers' own data says so.
        assert normalize_phone(text) == text, text
    assert answered > len(EXAMPLES)


def _mutate(text: str, ops: list[tuple[int, int, str]]) -> str:
    """Drop, add or replace a digit, or insert a letter, at positions after the ``+``."""
    chars = list(text)
    for op, where, char in ops:
        at = 1 + where % max(1, len(chars) - 1)
        if op == 0 and len(chars) > 2:
            del chars[at]
        elif op == 1:
            chars.insert(at, char if char.isdigit() else "5")
        elif op == 2 and at < len(chars):
            chars[at] = char if char.isdigit() else "7"
        elif op == 3:
            chars.insert(at, char if char.isalpha() else "x")
    return "".join(chars)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    text=st.sampled_from(EXAMPLES),
    ops=st.lists(
        st.tuples(
            st.integers(0, 3),
            st.integers(0, 20),
            st.sampled_from("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"),
        ),
        max_size=3,
    ),
    types=st.sampled_from(TYPE_SETS),
)
def test_fast_path_equals_phonenumbers_on_mutated_examples(
    text: str, ops: list[tuple[int, int, str]], types: frozenset[int] | None
) -> None:
    value = _mutate(text, ops)
    slow = normalize_phone_slow(value, types)
    assert normalize_phone(value, types) == slow
    fast = _fast_e164(value, types)
    assert fast is None or fast == slow
    if any(c.isalpha() for c in value):
        assert slow is None  # letters are never keypad digits


@pytest.mark.parametrize(
    "text",
    [
        "+8613912345678",  # China mobile
        "+12025550123",  # NANPA: the code's main region (US) decides
        "+14165550123",  # Canada shares +1
        "+39061234567",  # Italy: leading zero kept
        "+80012345678",  # non-geographic (region 001)
        "+447911123456",
    ],
)
def test_fast_path_answers_common_forms(text: str) -> None:
    assert _fast_e164(text) == text
    assert normalize_phone_slow(text) == text


@pytest.mark.parametrize(
    "text",
    [
        "+4407911123456",  # UK national prefix 0: phonenumbers strips it
        "+861121234567",  # China: matches the national-prefix-for-parsing pattern
        "+11125550123",  # NANPA: 1 is the national prefix
        "+0086139",  # a leading 0 cannot start a code
        "+999123456",  # not a country code
        "+86",  # too short
        "+86 139 1234 5678",  # not digits only
        "+８６１３９１２３４５６７８",  # fullwidth digits
        "+8613912345678901234567",  # too long for any number
        "+12025550",  # NANPA local-only length (7): possible, but not a valid number
        "+8613800",  # a digit short of anything valid
    ],
)
def test_fast_path_declines_what_it_cannot_be_sure_of(text: str) -> None:
    assert _fast_e164(text) is None


def test_national_prefix_is_still_stripped_by_the_slow_path() -> None:
    assert normalize_phone("+4407911123456") == "+447911123456"
    assert normalize_phone("4407911123456") == "+447911123456"


@st.composite
def _around_a_code(draw: st.DrawFn) -> str:
    code = draw(st.sampled_from(COUNTRY_CODES))
    metadata = _metadata(code)
    rest = draw(st.text(alphabet=string.digits, max_size=20))
    if metadata.national_prefix_for_parsing and draw(st.booleans()):
        prefix = draw(
            st.from_regex(
                re.compile(metadata.national_prefix_for_parsing, re.ASCII), fullmatch=True
            )
        )
        rest = prefix + rest
    return f"+{code}{rest}"


@PROPERTY
@given(
    value=st.one_of(
        _around_a_code(),
        st.text(alphabet="+0123456789", max_size=24),
        st.text(alphabet="+0123456789 -()٠١٢٣٤٥٦٧٨٩０１２３４５６７８９x#;.", max_size=24),
        st.text(max_size=24),
        st.integers(min_value=0, max_value=10**22),
        st.none(),
        st.booleans(),
        st.floats(allow_nan=False),
    )
)
@example(value="+8613912345678")
@example(value="+861791234567")
@example(value=" +86 139-1234-5678 ")
@example(value=True)
def test_normalize_phone_equals_phonenumbers(value: object) -> None:
    for types in TYPE_SETS:
        expected = normalize_phone_slow(value, types)
        assert normalize_phone(value, types) == expected
        problems: list[Problem] = []
        assert check_phone(0, "phone", value, problems, types=types) == expected
        assert len(problems) == (expected is None)
        if isinstance(value, str) and value.startswith("+"):
            fast = _fast_e164(value, types)
            assert fast is None or fast == expected
