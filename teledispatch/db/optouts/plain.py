"""The ``optouts`` reads of the path without SQLAlchemy (``db/plain.py``): the same rows as
their namesakes in ``statements``, for ``teledispatch send --dry-run``."""

from __future__ import annotations

from collections.abc import Sequence

from teledispatch.db.plain import Plain

#: The global list's account (``tables.GLOBAL_OPTOUT``, whose module brings SQLAlchemy; the
#: component tests compare both paths on global entries).
GLOBAL = "*"

SUPPRESSED_AMONG_SQL = (
    "SELECT phone FROM optouts WHERE account IN (:accounts) AND phone IN (:phones)"
)


def suppressed_among(conn: Plain, account: str, phones: Sequence[str]) -> set[str]:
    """Which of ``phones`` are opted out of ``account`` (its list or the global one): one
    statement, an index lookup per number on the primary key ``(account, phone)``."""
    if not phones:
        return set()
    params = {"accounts": [account, GLOBAL], "phones": list(phones)}
    return {str(row[0]) for row in conn.rows(SUPPRESSED_AMONG_SQL, params)}
