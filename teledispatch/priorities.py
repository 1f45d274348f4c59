"""Priority lanes: a job's ``priority`` word and the number stored with its messages.

Claims serve the lowest number first (high, then normal, then low), so the stored value is a
small integer that sorts in serving order; the words are what the API, the CLI and
``SendJob`` accept and show.
"""

from __future__ import annotations

from typing import Literal

Priority = Literal["high", "normal", "low"]

#: Word -> stored value, in serving order.
PRIORITIES: dict[str, int] = {"high": 0, "normal": 1, "low": 2}
#: Stored values in the order claims take them.
PRIORITY_ORDER: tuple[int, ...] = tuple(PRIORITIES.values())
DEFAULT_PRIORITY: Priority = "normal"


def priority_value(word: str) -> int:
    """The stored value of a priority word; ValueError naming the allowed words."""
    try:
        return PRIORITIES[word]
    except KeyError:
        raise ValueError(f"priority {word!r} must be one of high, normal, low") from None


def priority_word(value: int) -> str:
    """The word for a stored value (an unknown value shows as ``normal``)."""
    for word, v in PRIORITIES.items():
        if v == value:
            return word
    return DEFAULT_PRIORITY
