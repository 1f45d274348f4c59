"""Estimated cost of a message from an account's price table (``[accounts.x.prices]``).

Prices are keyed by the leading digits of the E.164 number (a country calling code, or a
longer prefix for a region or network priced apart); the longest matching key wins and ``*``
prices every other number. Pure: the dry run sums these, nothing is billed from them.
"""

from __future__ import annotations

from functools import lru_cache

#: The longest prefix a price table may use (country code plus a few digits).
MAX_PREFIX = 6


@lru_cache(maxsize=16)
def _table(prices: tuple[tuple[str, float], ...]) -> dict[str, float]:
    return dict(prices)


def price_for(prices: tuple[tuple[str, float], ...], phone: str) -> float | None:
    """The price of one unit to ``phone`` (E.164, ``+`` optional), or None if unpriced."""
    if not prices:
        return None
    table = _table(prices)
    digits = phone.lstrip("+")
    for length in range(min(MAX_PREFIX, len(digits)), 0, -1):
        price = table.get(digits[:length])
        if price is not None:
            return price
    return table.get("*")
