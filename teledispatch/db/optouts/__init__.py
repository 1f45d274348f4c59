"""Every statement on the ``optouts`` table (the suppression lists): ``statements``
(SQLAlchemy) and ``plain`` (SQL text for the read path without SQLAlchemy, ``db/plain.py``).
Callers import the package (``from teledispatch.db import optouts as optouts_db``);
``statements`` loads on first use (PEP 562), so that ``plain`` comes without SQLAlchemy.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

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


def __getattr__(name: str) -> Any:
    # As db/jobs: dunders and ``plain`` must not load the statements (and SQLAlchemy).
    if name.startswith("__") or name == "plain":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    statements = importlib.import_module(f"{__name__}.statements")
    try:
        value = getattr(statements, name)
    except AttributeError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    globals()[name] = value
    return value


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
