"""Every statement on ``attempts``: the accounts a routed message left, and why.

Rows are written by ``db/messages/failover.py`` in the transaction that moves the message,
and read by lookups (a message's attempts, oldest first). ``statements`` holds the
SQLAlchemy ones and loads on first use (PEP 562); ``plain`` the SQL text of the read path
without SQLAlchemy (``db/plain.py``), and :class:`AttemptRow`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from teledispatch.db.attempts.plain import AttemptRow

if TYPE_CHECKING:
    from teledispatch.db.attempts.statements import a, delete_for_job, for_messages, insert


def __getattr__(name: str) -> Any:
    # Dunders are asked for by tools; ``plain``, by ``from ... import plain`` before it is
    # loaded: neither may load the statements (and SQLAlchemy).
    if name.startswith("__") or name == "plain":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    statements = importlib.import_module(f"{__name__}.statements")
    try:
        value = getattr(statements, name)
    except AttributeError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    globals()[name] = value
    return value


__all__ = ["AttemptRow", "a", "delete_for_job", "for_messages", "insert"]
