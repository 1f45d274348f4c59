"""The ``messages`` reads of the path without SQLAlchemy (``db/plain.py``): the same rows as
their namesakes in ``reads``, for ``teledispatch status``, ``lookup`` and ``send --dry-run``.

Statuses are written as literals, as ``reads`` renders them where a partial index applies.
"""

from __future__ import annotations

from teledispatch.db.plain import Plain, Row
from teledispatch.statuses import CLAIMABLE, SUPPRESSED, UNKNOWN, UNRECONCILED


def _literals(*values: str) -> str:
    return ", ".join(f"'{v}'" for v in values)


_WAITING = _literals(*CLAIMABLE)

STATUS_COUNTS_SQL = (
    "SELECT status, count(*) AS n FROM messages WHERE job_id = :job_id GROUP BY status"
)
COUNT_RECONCILING_SQL = (
    "SELECT count(*) AS n FROM messages WHERE job_id = :job_id"
    f" AND status = '{UNKNOWN}' AND (error_code IS NULL OR error_code != '{UNRECONCILED}')"
)
#: ``min``/``max`` of the waiting rows' due times after ``now``: when the first and the last
#: of them become due.
DUE_AT_SQL = (
    "SELECT min(due_at) AS first_due, max(due_at) AS last_due FROM messages"
    f" WHERE job_id = :job_id AND status IN ({_WAITING}) AND due_at > :now"
)
SEGMENT_COUNTS_SQL = (
    "SELECT encoding, sum(segments) AS n FROM messages"
    f" WHERE job_id = :job_id AND encoding IS NOT NULL AND status != '{SUPPRESSED}'"
    " GROUP BY encoding ORDER BY encoding"
)
ACCOUNT_LOAD_SQL = (
    "SELECT job_id, priority, count(*) AS waiting, min(due_at) AS first_due FROM messages"
    f" WHERE account = :account AND status IN ({_WAITING}) GROUP BY job_id, priority"
)
#: The account's messages waiting to be sent (``reads.waiting_count``, ``ix_messages_claim``).
WAITING_COUNT_SQL = (
    f"SELECT count(*) AS n FROM messages WHERE account = :account AND status IN ({_WAITING})"
)
#: ``find_messages``: the keys given, then this order.
FIND_SQL = "SELECT * FROM messages WHERE {where} ORDER BY created_at DESC, id LIMIT :limit"


def status_counts(conn: Plain, job_id: str) -> dict[str, int]:
    return {str(s): int(n) for s, n in conn.rows(STATUS_COUNTS_SQL, {"job_id": job_id})}


def count_reconciling(conn: Plain, job_id: str) -> int:
    return int(conn.rows(COUNT_RECONCILING_SQL, {"job_id": job_id})[0][0])


def due_range(conn: Plain, job_id: str, now: float) -> tuple[float | None, float | None]:
    """``(next_due_at, last_due_at)`` of ``reads`` in one statement."""
    first, last = conn.rows(DUE_AT_SQL, {"job_id": job_id, "now": now})[0]
    return (None if first is None else float(first), None if last is None else float(last))


def segment_counts(conn: Plain, job_id: str) -> dict[str, int]:
    rows = conn.rows(SEGMENT_COUNTS_SQL, {"job_id": job_id})
    return {str(encoding): int(n or 0) for encoding, n in rows}


def account_load(conn: Plain, account: str) -> list[Row]:
    return conn.rows(ACCOUNT_LOAD_SQL, {"account": account})


def waiting_count(conn: Plain, account: str) -> int:
    """The backlog a new job of ``account`` queues behind (queued or deferred)."""
    return int(conn.rows(WAITING_COUNT_SQL, {"account": account})[0][0])


def find_messages(
    conn: Plain,
    *,
    phone: str | None = None,
    provider_id: str | None = None,
    message_id: str | None = None,
    limit: int = 100,
) -> list[Row]:
    """Whole rows matching every given key, newest first."""
    keys = {"phone": phone, "provider_id": provider_id, "id": message_id}
    given = {k: v for k, v in keys.items() if v is not None}
    where = " AND ".join(f"{k} = :{k}" for k in given) or "1 = 1"
    return conn.rows(FIND_SQL.format(where=where), {**given, "limit": limit})
