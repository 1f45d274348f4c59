"""The ``attempts`` statements built with SQLAlchemy (the package's docstring says more)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from teledispatch.db.attempts.plain import AttemptRow
from teledispatch.db.tables import attempts_table

a = attempts_table.c


def insert(conn: sa.Connection, rows: Sequence[AttemptRow]) -> None:
    if rows:
        values: list[dict[str, Any]] = [
            {
                "message_id": r.message_id,
                "account": r.account,
                "at": r.at,
                "outcome": r.outcome,
                "error_code": (r.error_code or None) and r.error_code[:64],
                "error_text": (r.error_text or None) and r.error_text[:1000],
            }
            for r in rows
        ]
        conn.execute(sa.insert(attempts_table), values)


def for_messages(conn: sa.Connection, ids: Sequence[str]) -> dict[str, list[AttemptRow]]:
    """Each message's attempts in the order they happened (messages without any: absent)."""
    found: dict[str, list[AttemptRow]] = {}
    if not ids:
        return found
    query = (
        sa.select(a.message_id, a.account, a.at, a.outcome, a.error_code, a.error_text)
        .where(a.message_id.in_(list(ids)))
        .order_by(a.seq)
    )
    for row in conn.execute(query):
        found.setdefault(row.message_id, []).append(AttemptRow(*row))
    return found


def delete_for_job(engine: Engine, job_id: str) -> int:
    """Retention: a purged job's attempts (its message ids are ``<job id>-<index>``). One
    statement: only messages that moved have attempts, few next to the job's messages."""
    stmt = sa.delete(attempts_table).where(a.message_id.like(f"{job_id}-%"))
    with engine.begin() as conn:
        return int(conn.execute(stmt).rowcount or 0)
