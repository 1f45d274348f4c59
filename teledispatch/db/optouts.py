"""Every statement on the ``optouts`` table: the suppression lists.

One list per account and one global list (``account = '*'``, :data:`GLOBAL_OPTOUT`). A
recipient is suppressed for an account when its number is on that account's list or on the
global one. Every check is an index lookup on the primary key ``(account, phone)``, so it
costs the same at ten entries and at ten million: the producer asks once per stored part
(:func:`suppressed_among`), the claim once per claim (:func:`opted_out`, an ``EXISTS`` the
claim's own statement embeds).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from teledispatch.db.tables import GLOBAL_OPTOUT, AnyRow, optouts_table

__all__ = ["GLOBAL_OPTOUT", "add", "count", "opted_out", "page", "remove", "suppressed_among"]

o = optouts_table.c
#: Rows per INSERT/DELETE statement when adding or removing many numbers (an import).
WRITE_CHUNK = 5000


def add(conn: sa.Connection, account: str, phones: Iterable[str], now: float) -> int:
    """Put ``phones`` on ``account``'s list (``'*'``: the global one); returns how many were
    not on it already."""
    added = 0
    for chunk in _chunks(sorted(set(phones))):
        table: Any = postgresql if conn.dialect.name == "postgresql" else sqlite
        stmt = table.insert(optouts_table).on_conflict_do_nothing(
            index_elements=["account", "phone"]
        )
        rows = [{"account": account, "phone": p, "created_at": now} for p in chunk]
        added += int(conn.execute(stmt, rows).rowcount or 0)
    return added


def remove(conn: sa.Connection, account: str, phones: Iterable[str]) -> int:
    """Take ``phones`` off ``account``'s list; returns how many were on it."""
    removed = 0
    for chunk in _chunks(sorted(set(phones))):
        stmt = sa.delete(optouts_table).where(o.account == account, o.phone.in_(chunk))
        removed += int(conn.execute(stmt).rowcount or 0)
    return removed


def page(conn: sa.Connection, account: str, after: str = "", limit: int = 1000) -> list[AnyRow]:
    """``(phone, created_at)`` of ``account``'s list in phone order, after ``after``."""
    return list(
        conn.execute(
            sa.select(o.phone, o.created_at)
            .where(o.account == account, o.phone > after)
            .order_by(o.phone)
            .limit(limit)
        ).all()
    )


def count(conn: sa.Connection, account: str) -> int:
    return int(
        conn.execute(
            sa.select(sa.func.count()).select_from(optouts_table).where(o.account == account)
        ).scalar_one()
    )


def suppressed_among(conn: sa.Connection, account: str, phones: Sequence[str]) -> set[str]:
    """Which of ``phones`` are opted out of ``account`` (its list or the global one).

    One statement per call, an index lookup per number: the producer calls it once per part
    of a job. On PostgreSQL the numbers go as one array parameter (``= ANY``), not thousands
    of bound values."""
    if not phones:
        return set()
    accounts = o.account.in_((account, GLOBAL_OPTOUT))
    if conn.dialect.name == "postgresql":
        arr = sa.bindparam("phones", list(phones), type_=postgresql.ARRAY(sa.String))
        where: Any = sa.and_(accounts, o.phone == sa.any_(arr))
    else:
        where = sa.and_(accounts, o.phone.in_(list(phones)))
    return {row[0] for row in conn.execute(sa.select(o.phone).where(where))}


def opted_out(account: sa.ColumnElement[str], phone: sa.ColumnElement[str]) -> Any:
    """``EXISTS`` an entry suppressing ``phone`` for ``account`` (columns of the caller's
    statement): for a claim to find rows whose recipient opted out after enqueue."""
    return (
        sa.select(sa.literal(1))
        .where(sa.or_(o.account == account, o.account == GLOBAL_OPTOUT), o.phone == phone)
        .exists()
    )


def _chunks(items: Sequence[str]) -> Iterable[Sequence[str]]:
    for start in range(0, len(items), WRITE_CHUNK):
        yield items[start : start + WRITE_CHUNK]
