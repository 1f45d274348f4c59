"""The phone fast path answers exactly as ``phonenumbers`` does, or not at all.

``normalize_phone`` skips ``phonenumbers.parse`` for ``+`` and ASCII digits; these tests compare
it with :func:`normalize_phone_slow` (``phonenumbers`` alone) on random inputs around every
country calling code: every national number length, national prefixes, leading zeros, unknown
codes, and arbitrary text. They also check that the fast path does answer for the common
forms, so that a fast path that never answers (always equal, never fast) fails here.
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
    _country_rule,
    _fast_e164,
    normalize_phone,
    normalize_phone_slow,
)

COUNTRY_CODES = sorted(phonenumbers.COUNTRY_CODE_TO_REGION_CODE)
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
    for text in _differential_inputs(rng):
        slow = normalize_phone_slow(text)
        fast = _fast_e164(text)
        assert fast is None or fast == slow, (text, fast, slow)
        assert normalize_phone(text) == slow, text
        checked += 1
        if fast is not None:
            answered += 1
        elif slow is not None:
            refused += 1
    assert checked > 50_000
    # The fast path takes most possible numbers and leaves the rest to phonenumbers.
    assert answered > 20_000
    assert refused > 1_000


@pytest.mark.parametrize(
    "text",
    [
        "+8613912345678",  # China mobile
        "+12025550123",  # NANPA: the code's main region (US) decides
        "+14165550123",  # Canada shares +1
        "+39061234567",  # Italy: leading zero kept
        "+80012345678",  # non-geographic (region 001)
        "+447911123456",
        "+12025550",  # NANPA local-only length (7) is "possible"
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
    expected = normalize_phone_slow(value)
    assert normalize_phone(value) == expected
    if isinstance(value, str) and value.startswith("+"):
        fast = _fast_e164(value)
        assert fast is None or fast == expected
