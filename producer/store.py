"""The database: the source of truth for every job and every recipient's outcome.

The tables live in ``producer`` because both sides read them: the producer writes the job
header and reads outcomes (lookup), the worker writes recipients and outcomes. ``worker``
imports this module; ``producer`` never imports ``worker``.

Times are stored as epoch seconds (UTC, float): the dispatcher compares ``due_at`` and
``lease_until`` on every claim, and floats compare the same way on SQLite and PostgreSQL.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlmodel import Field, SQLModel

#: Every status a message can have. Extend, never rename: lookups and dashboards depend on it.
QUEUED = "queued"  # accepted, waiting to be due / claimed
DEFERRED = "deferred"  # held back by a rate window; due again at due_at
SENDING = "sending"  # claimed by a worker under a lease
UNKNOWN = "unknown"  # request may have reached the provider; being reconciled
SENT = "sent"  # the provider accepted it
FAILED = "failed"  # terminal: the provider refused it, or attempts ran out
CANCELLED = "cancelled"  # terminal: cancelled before it was claimed
DELIVERED = "delivered"  # terminal: delivery receipt says delivered
UNDELIVERED = "undelivered"  # terminal: delivery receipt says not delivered

STATUSES = (
    QUEUED,
    DEFERRED,
    SENDING,
    UNKNOWN,
    SENT,
    FAILED,
    CANCELLED,
    DELIVERED,
    UNDELIVERED,
)
#: A job is done when none of its messages is in one of these, and no ``unknown`` message is
#: still being reconciled (``unknown`` with :data:`UNRECONCILED` is final: nobody can tell).
ACTIVE_STATUSES = frozenset({QUEUED, DEFERRED, SENDING})
UNRECONCILED = "unreconciled"


class Job(SQLModel, table=True):
    __tablename__ = "jobs"

    id: str = Field(primary_key=True, max_length=40)
    account: str = Field(max_length=100)
    channel: str = Field(max_length=40)
    #: Recipients in the job; fewer rows exist while parts are still in transit to a worker.
    total: int
    #: Parts the producer published; a re-enqueue with the same key re-publishes missing ones.
    parts: int = 0
    #: Job-wide fields, for display; each message's payload already has them merged in.
    defaults: str = "{}"
    idempotency_key: str | None = Field(default=None, max_length=200, unique=True)
    #: sha256 of the validated job: the same key with other content is refused.
    content_hash: str = Field(max_length=64)
    not_before: float | None = None
    created_at: float
    cancelled_at: float | None = None


class Message(SQLModel, table=True):
    __tablename__ = "messages"
    __table_args__ = (
        sa.Index("ix_messages_claim", "account", "status", "due_at"),
        sa.Index("ix_messages_job_status", "job_id", "status"),
        sa.Index("ix_messages_phone", "phone"),
        sa.Index("ix_messages_provider_id", "provider_id"),
        sa.Index("ix_messages_lease", "status", "lease_until"),
    )

    #: ``<job id>-<index>``: also the ``sysMessageId`` NXCloud echoes back as ``messageid``.
    id: str = Field(primary_key=True, max_length=50)
    job_id: str = Field(max_length=40)
    seq: int
    account: str = Field(max_length=100)
    channel: str = Field(max_length=40)
    phone: str = Field(max_length=32)
    #: Messages with different keys never share a request (VMS TaskOpenId); "" otherwise.
    group_key: str = Field(default="", max_length=200)
    #: The validated recipient fields (job defaults merged in), JSON.
    payload: str
    status: str = Field(default=QUEUED, max_length=16)
    due_at: float
    lease_until: float | None = None
    #: Set on claim; an outcome is written only by the holder of the current claim.
    claim_token: str | None = Field(default=None, max_length=40)
    attempts: int = 0
    provider_id: str | None = Field(default=None, max_length=100)
    error_code: str | None = Field(default=None, max_length=64)
    error_text: str | None = Field(default=None, max_length=1000)
    created_at: float
    updated_at: float
    sent_at: float | None = None
    #: When a delivery receipt or call record arrived.
    final_at: float | None = None


jobs_table: sa.Table = Job.__table__  # type: ignore[attr-defined]
messages_table: sa.Table = Message.__table__  # type: ignore[attr-defined]

_engines: dict[str, Engine] = {}
_lock = threading.Lock()


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # WAL lets lookups read while a worker writes; busy_timeout makes concurrent worker
    # processes queue for the write lock instead of failing with "database is locked".
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=60000")
    cur.close()


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = sa.create_engine(url, connect_args={"timeout": 60, "check_same_thread": False})
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        # pysqlite's own transaction handling defers BEGIN; issue it ourselves so that a
        # claim takes the write lock up front instead of upgrading (and deadlocking) later.
        sa.event.listen(
            engine,
            "connect",
            lambda conn, _r: setattr(conn, "isolation_level", None),
        )
        sa.event.listen(engine, "begin", lambda conn: conn.exec_driver_sql("BEGIN IMMEDIATE"))
        return engine
    return sa.create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5)


def get_engine(url: str) -> Engine:
    """One engine per URL per process (engines own connection pools)."""
    with _lock:
        engine = _engines.get(url)
        if engine is None:
            engine = _engines[url] = make_engine(url)
        return engine


def dispose_engines() -> None:
    """Drop pooled connections; called in a forked child so it never shares a parent's socket."""
    with _lock:
        for engine in _engines.values():
            engine.dispose(close=False)
        _engines.clear()


#: From this many rows a new job's part goes by ``COPY`` on PostgreSQL (below it, the extra
#: round trip of a COPY costs more than it saves).
COPY_MIN_ROWS = 64


def insert_messages(
    conn: sa.Connection, rows: Sequence[dict[str, Any]], *, fresh: bool = False
) -> None:
    """Insert, skipping ids already present: storing the same part twice changes nothing.

    ``fresh`` promises that none of the ids can exist yet (a job id minted a moment ago). On
    PostgreSQL such rows go by ``COPY``, several times cheaper per row than INSERT, for the
    producer and for the server; ``COPY`` cannot skip conflicts, hence the promise.
    """
    if not rows:
        return
    if fresh and conn.dialect.name == "postgresql" and len(rows) >= COPY_MIN_ROWS:
        _copy_messages(conn, rows)
        return
    if conn.dialect.name == "postgresql":
        stmt: Any = postgresql.insert(messages_table).on_conflict_do_nothing(index_elements=["id"])
    else:
        stmt = sqlite.insert(messages_table).on_conflict_do_nothing(index_elements=["id"])
    conn.execute(stmt, list(rows))


def _copy_messages(conn: sa.Connection, rows: Sequence[dict[str, Any]]) -> None:
    columns = list(rows[0])
    preparer = conn.dialect.identifier_preparer
    names = ", ".join(preparer.quote(c) for c in columns)
    sql = f"COPY {preparer.quote(messages_table.name)} ({names}) FROM STDIN"
    raw: Any = conn.connection.dbapi_connection
    with raw.cursor() as cur, cur.copy(sql) as copy:
        for row in rows:
            copy.write_row([row[c] for c in columns])


def create_schema(engine: Engine) -> None:
    SQLModel.metadata.create_all(engine)


def is_postgres(engine: Engine) -> bool:
    return engine.dialect.name == "postgresql"
