"""Database engines: one per URL per process, set up for how the dispatcher writes."""

from __future__ import annotations

import threading
import time
from contextlib import AbstractContextManager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

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
    engine = sa.create_engine(
        url,
        pool_size=5,
        max_overflow=5,
        # The most recently used connection first: the hot one has its statements prepared
        # and the others can idle (and be pinged when they come back, see below).
        pool_use_lifo=True,
        # Prepared from the second run on a connection (psycopg's default is the sixth):
        # planning the claim's statements cost more than running them.
        connect_args={"prepare_threshold": 1},
    )
    sa.event.listen(engine, "checkin", _stamp_idle)
    sa.event.listen(engine, "checkout", _ping_if_idle(engine.dialect))
    return engine


#: A pooled connection idle for longer than this is pinged before it is used: the server may
#: have restarted or dropped it meanwhile. A connection in steady use is not (a ping on every
#: checkout was four round trips on a single message's way to the provider); if its server
#: went away all the same, that one statement fails and the pool drops every connection of
#: that age.
PING_IDLE_S = 5.0


def _stamp_idle(_dbapi_conn: Any, record: Any) -> None:
    record.info["idle_since"] = time.monotonic()


def _ping_if_idle(dialect: sa.Dialect) -> Any:
    def checkout(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get("idle_since")
        if since is None or time.monotonic() - since < PING_IDLE_S:
            return
        try:
            dialect.do_ping(dbapi_conn)
        except Exception as exc:
            # The pool then replaces this connection with a new one (one more try).
            raise sa.exc.DisconnectionError(type(exc).__name__) from exc

    return checkout


def get_engine(url: str) -> Engine:
    """One engine per URL per process (engines own connection pools)."""
    with _lock:
        engine = _engines.get(url)
        if engine is None:
            engine = _engines[url] = make_engine(url)
        return engine


def dispose_engines(*, close: bool = False) -> None:
    """Drop pooled connections. A forked child calls it without ``close`` so it never touches a
    parent's socket; a process done with its databases (a test's teardown) closes them."""
    with _lock:
        for engine in _engines.values():
            engine.dispose(close=close)
        _engines.clear()


def is_postgres(engine: Engine) -> bool:
    return engine.dialect.name == "postgresql"


def one_statement(engine: Engine) -> AbstractContextManager[sa.Connection]:
    """A connection for a single statement that is its own transaction. On PostgreSQL it runs
    in autocommit, where a statement is exactly as atomic and durable, without the BEGIN and
    COMMIT round trips a transaction block adds (two of four on a request's way out); elsewhere
    it is ``engine.begin()``."""
    if engine.dialect.name == "postgresql":
        return engine.connect().execution_options(isolation_level="AUTOCOMMIT")
    return engine.begin()


def upsert_insert(conn: sa.Connection) -> Any:
    """The ``insert`` of ``conn``'s dialect, the one with ``on_conflict_do_nothing``.

    Imported here, not by the modules that use it: ``sqlalchemy.dialects.postgresql`` costs a
    SQLite process (a CLI call) ~40 ms, and a PostgreSQL connection has loaded it already."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert


__all__ = [
    "dispose_engines",
    "get_engine",
    "is_postgres",
    "make_engine",
    "one_statement",
    "upsert_insert",
]
