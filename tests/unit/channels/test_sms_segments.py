"""Segment counting against hand-checked strings (3GPP TS 23.038 / 23.040)."""

from __future__ import annotations

import pytest

from teledispatch.channels.sms_segments import GSM7, UCS2, measure

CASES = [
    # text, encoding, units, parts
    ("Hello", GSM7, 5, 1),
    ("", GSM7, 0, 1),
    ("Ça coûte 5€", UCS2, 11, 1),  # û is not GSM: the whole text goes UCS-2
    ("Ça vaut 5€", GSM7, 11, 1),  # Ç basic, € extension (2 septets)
    ("@£$¥èéùìò_ΔΩ", GSM7, 12, 1),
    ("{x}", GSM7, 5, 1),
    ("^{}\\[~]|€", GSM7, 18, 1),
    ("a" * 160, GSM7, 160, 1),
    ("a" * 161, GSM7, 161, 2),
    ("a" * 306, GSM7, 306, 2),
    ("a" * 307, GSM7, 307, 3),
    ("a" * 159 + "€", GSM7, 161, 2),  # 160 characters, 161 septets
    ("你" * 70, UCS2, 70, 1),
    ("你" * 71, UCS2, 71, 2),
    ("你" * 134, UCS2, 134, 2),
    ("你" * 135, UCS2, 135, 3),
    ("验证码 123456", UCS2, 10, 1),
    ("Hi 😀", UCS2, 5, 1),  # the emoji is a surrogate pair: 2 code units
    ("😀" * 35, UCS2, 70, 1),
    ("😀" * 36, UCS2, 72, 2),
    ("é" * 10 + "ê", UCS2, 11, 1),  # é is GSM, ê is not
    # A two-unit character is never split between parts: it starts the next one.
    ("a" * 152 + "€" + "a" * 152, GSM7, 306, 3),  # € would straddle septets 153/154
    ("a" * 151 + "€" + "a" * 153, GSM7, 306, 2),  # € ends part 1 exactly
    ("你" * 66 + "😀" + "你" * 66, UCS2, 134, 3),  # the pair would straddle units 67/68
    ("你" * 65 + "😀" + "你" * 67, UCS2, 134, 2),
    ("€" * 80, GSM7, 160, 1),  # extension characters only: exactly 160 septets
    ("€" * 153, GSM7, 306, 3),  # 76 per part (152 septets), never 76.5: not 306 / 153
]


@pytest.mark.parametrize(("text", "encoding", "units", "parts"), CASES)
def test_measure(text: str, encoding: str, units: int, parts: int) -> None:
    got = measure(text)
    assert (got.encoding, got.units, got.parts) == (encoding, units, parts)
