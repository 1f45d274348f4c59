"""The database: the source of truth for every job and every recipient's outcome.

The tables live in ``producer`` because both sides read them: the producer writes the job
header and reads outcomes (lookup), the worker writes recipients and outcomes. ``worker``
imports this module; ``producer`` never imports ``worker``.

Times are stored as epoch seconds (UTC, float): the dispatcher compares ``due_at`` on every
claim and the sweep ``lease_until``, and floats compare the same way on SQLite and PostgreSQL.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlmodel import Field, SQLModel

from teledispatch.channels.registry import polled_channels

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


#: Statuses the dispatcher, the sweep and reconciliation look for by account and due time. The
#: claim index holds only these: a message that reaches ``sent`` (or any terminal status)
#: leaves it, so the outcome write inserts one index entry fewer, and the index stays as small
#: as the backlog instead of growing with every message ever sent.
INDEXED_STATUSES = (QUEUED, DEFERRED, UNKNOWN)
#: Channels whose delivery receipts are polled (worker/receipts.py): only their ``sent``
#: messages are indexed for the poll. Push-receipt channels (NXCloud DR, Volcengine call
#: records) are settled by provider id and need no such entry.
POLLED_CHANNELS = polled_channels()


def _in_sql(column: str, values: Sequence[str]) -> sa.TextClause:
    return sa.text(f"{column} IN ({', '.join(repr(v) for v in values)})")


def _partial(where: sa.TextClause) -> dict[str, Any]:
    return {"postgresql_where": where, "sqlite_where": where}


_CLAIMABLE_WHERE = _in_sql("status", INDEXED_STATUSES)
_PROVIDER_ID_WHERE = sa.text("provider_id IS NOT NULL")
_LEGACY_WHERE = sa.text("status = 'sending' AND lease_until IS NOT NULL")
_POLL_WHERE = sa.text(
    f"{_in_sql('channel', POLLED_CHANNELS).text} AND status IN ('sent', 'unknown') "
    "AND provider_id IS NOT NULL"
)


def literal_status(*statuses: str) -> Any:
    """Statuses as SQL literals instead of bound parameters, for queries that must use a
    partial index: a planner can only match ``status IN ('queued', …)`` against a value it
    sees when planning (SQLite never sees bound values; a PostgreSQL generic plan neither)."""
    for s in statuses:
        if s not in STATUSES:
            raise ValueError(f"unknown status {s!r}")
    return [sa.literal_column(repr(s)) for s in statuses]


class Message(SQLModel, table=True):
    __tablename__ = "messages"
    __table_args__ = (
        # Every UPDATE that changes ``status`` inserts a new entry into every index whose
        # predicate the new row satisfies (an indexed column changed, so it is never HOT):
        # partial indexes are what keeps a claim and an outcome cheap. The sweep finds lost
        # batches in ``batches``.
        # Partial on PostgreSQL only, whose planner proves ``status = 'queued'`` implies the
        # index's ``status IN (…)``. SQLite uses a partial index only when the query repeats
        # its WHERE term verbatim: there every claim, due check and reconcile scanned the
        # table and sorted it (25 ms per claim at 60,000 rows, under the write lock).
        sa.Index(
            "ix_messages_claim",
            "account",
            "status",
            "due_at",
            postgresql_where=_CLAIMABLE_WHERE,
        ),
        # Claimed rows by claim token: the outcome write and the sweep find a batch's rows
        # through it. Not part of the claim index: an index scan for ``status = 'sending'``
        # there walked every dead entry left by earlier claims (the planner takes 'sending'
        # for rare), where this one is keyed by the token and only holds live claims' rows.
        sa.Index("ix_messages_sending", "claim_token", **_partial(sa.text("status = 'sending'"))),
        # Claims of the release before 0002 (lease on the message, no batch row), which the
        # sweep still reclaims during a rolling upgrade: empty otherwise (new claims and every
        # outcome clear ``lease_until``), so it costs nothing, where without it every sweep
        # walked the whole sending index (~100 ms each at 1,000,000 messages).
        sa.Index("ix_messages_legacy_lease", "account", "lease_until", **_partial(_LEGACY_WHERE)),
        sa.Index("ix_messages_job_status", "job_id", "status"),
        sa.Index("ix_messages_phone", "phone"),
        sa.Index("ix_messages_provider_id", "provider_id", **_partial(_PROVIDER_ID_WHERE)),
        sa.Index("ix_messages_receipt_poll", "account", "due_at", **_partial(_POLL_WHERE)),
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
    #: Written only by the previous release's workers (a claim's lease is now its ``batches``
    #: row); the sweep still reclaims their lost claims from it during a rolling upgrade.
    lease_until: float | None = None
    #: Set on claim; an outcome is written only by the holder of the current claim.
    claim_token: str | None = Field(default=None, max_length=40)
    attempts: int = 0
    provider_id: str | None = Field(default=None, max_length=500)
    error_code: str | None = Field(default=None, max_length=64)
    error_text: str | None = Field(default=None, max_length=1000)
    created_at: float
    updated_at: float
    sent_at: float | None = None
    #: When a delivery receipt or call record arrived.
    final_at: float | None = None


class Batch(SQLModel, table=True):
    """One request's worth of claimed messages (one claim, one group key): its lease and
    whether it departed, recorded once per request instead of once per message.

    The worker marks departure by a compare-and-set on this row just before the request
    leaves; the sweep deletes expired rows and, from ``departed_at``, requeues the batch's
    messages or hands them to reconciliation. Both write this one row, so the database's row
    lock (PostgreSQL) or write lock (SQLite) decides which came first: a departure either
    happened before the reclaim (the sweep sees it) or fails (the worker does not send).
    """

    __tablename__ = "batches"
    __table_args__ = (sa.Index("ix_batches_lease", "account", "lease_until"),)

    claim_token: str = Field(primary_key=True, max_length=40)
    group_key: str = Field(default="", primary_key=True, max_length=200)
    account: str = Field(max_length=100)
    lease_until: float
    #: Set just before the request leaves; cleared if the departure gate then refuses it.
    departed_at: float | None = None


jobs_table: sa.Table = Job.__table__  # type: ignore[attr-defined]
messages_table: sa.Table = Message.__table__  # type: ignore[attr-defined]
batches_table: sa.Table = Batch.__table__  # type: ignore[attr-defined]

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
