"""How an SMS text is encoded on the air and how many parts it is billed as.

Providers bill per segment, not per message: a text in the GSM 03.38 default alphabet fits
160 septets in one SMS, else UCS-2 fits 70 UTF-16 code units. A longer text is sent as a
concatenated SMS whose parts each lose room to the concatenation header (153 septets / 67
code units). Characters of the GSM extension table (``^{}\\[~]|€`` and form feed) take an
escape septet plus their own, so count two. See 3GPP TS 23.038 §6.2.1 and TS 23.040 §9.2.3.24.1.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

GSM7 = "gsm7"
UCS2 = "ucs2"

#: The GSM 03.38 default alphabet (the escape 0x1B is not a character of its own).
_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
#: The extension table: each is sent as escape + one septet.
_EXTENDED = frozenset("^{}\\[~]|€\f")

SINGLE = {GSM7: 160, UCS2: 70}
PART = {GSM7: 153, UCS2: 67}


@dataclass(frozen=True, slots=True)
class Segments:
    encoding: str
    #: Septets (GSM 7-bit) or UTF-16 code units (UCS-2) of the whole text.
    units: int
    parts: int


def _gsm_septets(text: str) -> int | None:
    """Septets of ``text`` in GSM 03.38, or None if a character is not in it."""
    septets = 0
    for ch in text:
        if ch in _BASIC:
            septets += 1
        elif ch in _EXTENDED:
            septets += 2
        else:
            return None
    return septets


@lru_cache(maxsize=4096)
def measure(text: str) -> Segments:
    """The encoding, length in its units and parts of ``text``. Cached: a campaign sends the
    same text (or a few rendered variants of it) to many recipients."""
    septets = _gsm_septets(text)
    if septets is not None:
        encoding, units = GSM7, septets
    else:
        # UTF-16 code units: a character outside the BMP (an emoji) is a surrogate pair.
        encoding, units = UCS2, len(text.encode("utf-16-le")) // 2
    parts = 1 if units <= SINGLE[encoding] else _parts(text, encoding)
    return Segments(encoding, units, parts)


def _width(ch: str, encoding: str) -> int:
    if encoding == GSM7:
        return 2 if ch in _EXTENDED else 1
    return 2 if ord(ch) > 0xFFFF else 1


def _parts(text: str, encoding: str) -> int:
    """Parts of a concatenated SMS. A character is never split between two parts (phones
    could not join an escape and its septet, or the halves of a surrogate pair), so a
    two-unit character that would straddle a boundary starts the next part: such a text can
    need one part more than its units divided by the room of a part."""
    room = PART[encoding]
    parts, used = 1, 0
    for ch in text:
        width = _width(ch, encoding)
        if used + width > room:
            parts, used = parts + 1, 0
        used += width
    return parts
