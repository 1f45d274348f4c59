"""Reading through the database's own driver (``sqlite3``, ``psycopg``), without SQLAlchemy.

``teledispatch status`` and ``lookup`` run a handful of SELECTs and end; importing SQLAlchemy
for them cost more than everything else they do. They read through :class:`Plain` instead,
with SQL text kept in each table's own package beside its SQLAlchemy statements
(``db/jobs/plain.py``, ``db/messages/plain.py``, ``db/attempts/plain.py``).

This is a fast path, never the only one: :func:`connect` returns None for any URL it does not
read exactly as SQLAlchemy would (query options, another driver, a SQLite file that does not
exist yet), and a caller meeting a :func:`failed` error starts over on the SQLAlchemy path, which
creates or migrates the schema and words every error as before. Nothing here ever writes.
"""

from __future__ import annotations

import os
import re
import sqlite3
import sys
from collections import namedtuple
from collections.abc import Mapping, Sequence
from functools import cache
from typing import Any
from urllib.parse import unquote, urlsplit

#: ``:name`` parameters, as the statements are written (not ``::`` casts).
_PARAM = re.compile(r"(?<![:\w]):(\w+)")

#: A row as SQLAlchemy's: columns by name (``row.status``) and by position (unpacking).
Row = tuple[Any, ...]


@cache
def _row_type(names: tuple[str, ...]) -> Any:
    return namedtuple("Row", names, rename=True)


class Plain:
    """A read-only connection: :meth:`rows` runs one SELECT with ``:name`` parameters; a
    sequence value stands for a list (``IN (:ids)``)."""

    def __init__(self, conn: Any, named: bool) -> None:
        self._conn = conn
        #: sqlite3 takes ``:name``; psycopg takes ``%(name)s`` (and ``%`` then needs doubling).
        self._named = named

    def rows(self, sql: str, params: Mapping[str, Any] | None = None) -> list[Row]:
        """Each row with its columns as attributes (``row.status``), as a SQLAlchemy row."""
        cur = self._conn.cursor()
        try:
            cur.execute(*self._prepare(sql, dict(params or {})))
            make = _row_type(tuple(d[0] for d in cur.description))._make
            return [make(row) for row in cur.fetchall()]
        finally:
            cur.close()

    def _prepare(self, sql: str, params: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        flat: dict[str, Any] = {}

        def bind(match: re.Match[str]) -> str:
            name = match.group(1)
            value = params[name]
            if isinstance(value, Sequence) and not isinstance(value, str):
                keys = [f"{name}_{i}" for i in range(len(value))]
                flat.update(zip(keys, value, strict=True))
            else:
                keys = [name]
                flat[name] = value
            return ", ".join(f":{k}" if self._named else f"%({k})s" for k in keys)

        if not self._named:
            sql = sql.replace("%", "%%")
        return _PARAM.sub(bind, sql), flat

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> Plain:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def _sqlite(rest: str) -> Plain | None:
    # ``sqlite:///PATH``: PATH relative, ``sqlite:////PATH``: absolute. An in-memory database
    # or one not yet created is the engine's to make (and to migrate).
    path = rest
    if not path or path == ":memory:" or any(c in path for c in "?#%") or not os.path.isfile(path):
        return None
    conn = sqlite3.connect(path, timeout=60, check_same_thread=False, isolation_level=None)
    return Plain(conn, named=True)


#: The fast path's connect attempt gives up after this long (seconds) and the SQLAlchemy
#: path, which reports the failure, tries again: without it a host that drops packets cost
#: two full TCP timeouts before the error line.
CONNECT_TIMEOUT_S = 5


def _postgres(url: str) -> Plain | None:
    try:
        parts = urlsplit(url)
        port = parts.port  # a port out of range is the SQLAlchemy path's error to word
    except ValueError:
        return None
    if parts.query or parts.fragment or not parts.hostname or not parts.path.strip("/"):
        return None
    try:
        import psycopg
    except ImportError:
        return None
    # Left out when the URL leaves them out (None): libpq's defaults then, as for SQLAlchemy.
    conn = psycopg.connect(
        host=parts.hostname,
        port=port,
        user=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        dbname=unquote(parts.path.strip("/")),
        autocommit=True,
        connect_timeout=CONNECT_TIMEOUT_S,
    )
    return Plain(conn, named=False)


def connect(url: str) -> Plain | None:
    """A read-only connection to ``url``; None when only SQLAlchemy should open it. What it
    raises when the database cannot be reached is :func:`failed`."""
    if url.startswith("sqlite:///"):
        return _sqlite(url.removeprefix("sqlite:///"))
    if url.startswith("postgresql+psycopg://"):
        return _postgres(url)
    return None


def failed(exc: BaseException) -> bool:
    """Whether ``exc`` is the database's (any DB-API error, a SQLite file that cannot be
    opened): the SQLAlchemy path then runs instead, and reports it in its own words."""
    if isinstance(exc, sqlite3.Error | OSError):
        return True
    psycopg = sys.modules.get("psycopg")
    return psycopg is not None and isinstance(exc, psycopg.Error)


def is_dbapi_error(exc: BaseException) -> bool:
    """Whether ``exc`` is the driver's own (what SQLAlchemy wraps, keeping it as ``orig``)."""
    if isinstance(exc, sqlite3.Error):
        return True
    psycopg = sys.modules.get("psycopg")
    return psycopg is not None and isinstance(exc, psycopg.Error)


class Failed(Exception):
    """The database failed after a plain reader had begun what cannot be started over (a
    CSV's rows read): reported as SQLAlchemy's error wrapping ``orig`` would be."""

    def __init__(self, orig: BaseException) -> None:
        super().__init__(str(orig))
        self.orig = orig
