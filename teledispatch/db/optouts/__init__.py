"""Every statement on the ``optouts`` table (the suppression lists): ``statements``
(SQLAlchemy) and ``plain`` (SQL text for the read path without SQLAlchemy, ``db/plain.py``).
Callers import the package (``from teledispatch.db import optouts as optouts_db``);
``statements`` loads on first use (PEP 562), so that ``plain`` comes without SQLAlchemy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from teledispatch.lazy import exports

if TYPE_CHECKING:
    from teledispatch.db.optouts.statements import (
        GLOBAL_OPTOUT,
        add,
        add_range,
        count,
        opted_out,
        page,
        remove,
        suppressed_among,
    )


__all__ = [
    "GLOBAL_OPTOUT",
    "add",
    "add_range",
    "count",
    "opted_out",
    "page",
    "remove",
    "suppressed_among",
]

# Every name but ``plain``'s from ``statements``, loaded on first use (SQLAlchemy).
__getattr__ = exports(__name__, globals(), dict.fromkeys(__all__, ".statements"))
