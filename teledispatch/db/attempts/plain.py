"""The ``attempts`` rows, and their read on the path without SQLAlchemy (``db/plain.py``):
the same rows as ``statements.for_messages``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from teledispatch.db.plain import Plain


@dataclass(frozen=True, slots=True)
class AttemptRow:
    message_id: str
    account: str
    at: float
    #: ``paused`` (its circuit was open) or ``refused`` (a code worth another provider).
    outcome: str
    error_code: str | None = None
    error_text: str | None = None


FOR_MESSAGES_SQL = (
    "SELECT message_id, account, at, outcome, error_code, error_text FROM attempts"
    " WHERE message_id IN (:ids) ORDER BY seq"
)


def for_messages(conn: Plain, ids: Sequence[str]) -> dict[str, list[AttemptRow]]:
    """Each message's attempts in the order they happened (messages without any: absent)."""
    found: dict[str, list[AttemptRow]] = {}
    if ids:
        for row in conn.rows(FOR_MESSAGES_SQL, {"ids": list(ids)}):
            found.setdefault(row[0], []).append(AttemptRow(*row))
    return found
