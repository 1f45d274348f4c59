"""Every statement on ``attempts``: the accounts a routed message left, and why.

Rows are written by ``db/messages/failover.py`` in the transaction that moves the message,
and read by lookups (a message's attempts, oldest first). ``statements`` holds the
SQLAlchemy ones and loads on first use (PEP 562); ``plain`` the SQL text of the read path
without SQLAlchemy (``db/plain.py``), and :class:`AttemptRow`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from teledispatch.db.attempts.plain import AttemptRow
from teledispatch.lazy import exports

if TYPE_CHECKING:
    from teledispatch.db.attempts.statements import a, delete_for_job, for_messages, insert


__all__ = ["AttemptRow", "a", "delete_for_job", "for_messages", "insert"]

# Every name but ``plain``'s from ``statements``, loaded on first use (SQLAlchemy).
__getattr__ = exports(__name__, globals(), dict.fromkeys(__all__, ".statements"))
