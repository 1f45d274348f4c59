"""Turning fuzzer bytes into structured values, without atheris.

The targets' ``check(data)`` must run under plain pytest too (the regression tests replay a
crash's exact bytes), so they read their input with :class:`Reader` rather than atheris'
``FuzzedDataProvider``. Every read is total: an exhausted input yields zeros and empty values,
so any byte string decodes to *some* value and libFuzzer's mutations stay meaningful.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Sequence
from typing import Any, TypeVar

T = TypeVar("T")

#: Strings that steer generated documents into the parsers' branches: the providers' field
#: names and codes, plus the values that broke parsers before (numeric look-alikes, blanks).
WORDS: tuple[str, ...] = (
    # NXCloud
    "code", "message", "data", "messageid", "status", "Success", "Failure", "row", "msgid",
    "phone", "result", "DELIVRD", "UNDELIV", "0", "13007", "13008", "-1",
    # USpeedo
    "RetCode", "Message", "SessionNo", "FailedTargetPhones", "FailContent", "Target", "Phone",
    "TemplateParams", "FailureReason", "FailureDetails", "TemplateId", "SenderId", "Data",
    "ReceiptSet", "ReceiptResult", "ReceiptCode", "ReceiptDesc", "Unknow", "215400",
    # Volcengine
    "ResponseMetadata", "Error", "Code", "Result", "FailList", "Index", "Type", "Desc", "SubId",
    "Status", "TaskOpenId", "Duration", "AnswerTime", "CallResult", "Records", "State",
    "InternalError", "ServiceUnavailable", "FlowLimit",
    # Phones and numbers in odd spellings
    "8613800138000", "13800138000", "+8613800138000", "T1", "tpl", "sid", "1e999", "NaN",
    "²", "١٢٣", " 1", "-", "",
)  # fmt: skip


#: What numbers are spelled with, ASCII or not: ``str.isdigit`` says True for "²" and "١",
#: ``int()`` accepts only some of them, and a parser must not trust the first to predict the
#: second.
DIGITS = "0123456789-+ ._e²³¹١٢٣०१߀０１\u2070\u2460"


_FLOATS = (0.0, -0.0, 1.5, -1.0, 1e300, math.inf, -math.inf, math.nan)


class Reader:
    """Consumes ``data`` from the front; never raises, whatever is left."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def byte(self) -> int:
        if self.pos >= len(self.data):
            return 0
        self.pos += 1
        return self.data[self.pos - 1]

    def uint(self, size: int) -> int:
        """``size`` bytes, big-endian (missing bytes read as 0)."""
        value = 0
        for _ in range(size):
            value = (value << 8) | self.byte()
        return value

    def below(self, n: int) -> int:
        """A number in ``0..n-1`` from one byte (two when ``n`` needs them)."""
        return self.uint(1 if n <= 256 else 2) % n

    def pick(self, items: Sequence[T]) -> T:
        return items[self.below(len(items))]

    def flag(self) -> bool:
        return self.byte() & 1 == 1

    def take(self, n: int) -> bytes:
        chunk = self.data[self.pos : self.pos + n]
        self.pos += len(chunk)
        return chunk

    def rest(self) -> bytes:
        return self.take(len(self.data) - self.pos)

    def text(self, limit: int = 24) -> str:
        """A word from :data:`WORDS`, or up to ``limit`` code points of the input (any
        character a JSON string can hold, lone surrogates included)."""
        mode = self.byte() % 6
        if mode < 2:
            return self.pick(WORDS)
        if mode < 4:
            # Codes and phones arrive as strings of digits, and parsers convert them.
            return "".join(self.pick(DIGITS) for _ in range(self.below(8)))
        raw = self.take(self.below(limit + 1))
        if mode == 4:
            return raw.decode("utf-8", "replace")
        # Pairs of bytes as UTF-16 code units: reaches "\ud800" and the CJK/Arabic digits.
        return "".join(chr(int.from_bytes(raw[i : i + 2], "big")) for i in range(0, len(raw), 2))

    def number(self) -> int | float:
        mode = self.byte() % 6
        if mode == 0:
            return self.uint(1) - 128
        if mode == 1:
            return self.uint(8) - (1 << 63)  # the whole 64-bit range (TOML's integers)
        if mode == 2:
            return self.pick(_FLOATS)
        if mode == 3:
            return int("1" + "0" * self.below(40))  # past 64 bits: JSON allows any integer
        if mode == 4:
            return self.uint(2) / 7
        return self.pick((0, 1, 2, -1, 200, 429, 500, 13007, 13008, 215400))


def json_value(r: Reader, depth: int = 0) -> Any:
    """A JSON-shaped value: what ``json.loads`` can return, keys mostly from :data:`WORDS`."""
    kind = r.byte() % (8 if depth < 6 else 5)
    if kind == 0:
        return None
    if kind == 1:
        return r.flag()
    if kind == 2:
        return r.number()
    if kind in (3, 4):
        return r.text()
    if kind in (5, 6):
        return {r.text(): json_value(r, depth + 1) for _ in range(r.below(6))}
    return [json_value(r, depth + 1) for _ in range(r.below(6))]


def json_body(r: Reader) -> bytes:
    """A generated document as a provider would send it (NaN/Infinity as Python writes them,
    which ``json.loads`` reads back), or the rest of the input verbatim."""
    if r.flag():
        return r.rest()
    return json.dumps(json_value(r), ensure_ascii=r.flag()).encode("utf-8", "surrogatepass")


def toml_value(r: Reader, depth: int = 0) -> Any:
    """A value ``tomllib`` can produce: no None, no lone surrogates, dates and times included."""
    kind = r.byte() % (9 if depth < 5 else 6)
    if kind == 0:
        return r.flag()
    if kind == 1:
        value = r.number()
        return value if isinstance(value, float) or -(1 << 63) <= value < (1 << 63) else 0
    if kind in (2, 3):
        return r.text().encode("utf-8", "replace").decode("utf-8")
    if kind == 4:
        return r.pick(("ENV:HOME", "ENV:TD_FUZZ_UNSET", "ENV:", "5m", "1h", "21:00-08:00"))
    if kind == 5:
        return r.pick((dt.date(2024, 1, 1), dt.time(8, 30), dt.datetime(2024, 1, 1, tzinfo=dt.UTC)))
    if kind in (6, 7):
        return {r.text(): toml_value(r, depth + 1) for _ in range(r.below(6))}
    return [toml_value(r, depth + 1) for _ in range(r.below(5))]
