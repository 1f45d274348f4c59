"""Failures any verb can meet, as one ``error:`` line each: the database, the installed version.

Kept out of ``main`` so that recognising a SQLAlchemy error needs no SQLAlchemy import at
start: the CLI pays for it only when a verb has already loaded it.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

#: The longest piece of a driver's message an error line repeats.
MAX_DETAIL = 160


class VersionAction(argparse.Action):
    """``--version``, looking the version up only when asked (it reads package metadata)."""

    def __init__(self, option_strings: list[str], dest: str, **kw: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, help="print the version and exit")

    def __call__(self, parser: argparse.ArgumentParser, *_: Any) -> None:
        print(f"{parser.prog} {version()}")
        parser.exit()


def version() -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        return dist_version("teledispatch")
    except PackageNotFoundError:
        return "unknown (not installed)"


def database_problem(exc: BaseException) -> str | None:
    """One line for a database failure (``DATABASE_URL`` wrong or the database unreachable),
    None for anything else. The URL is never repeated: it may hold a password."""
    plain = sys.modules.get("teledispatch.db.plain")
    if plain is not None and isinstance(exc, plain.Failed):
        # Named as SQLAlchemy would name what it wraps: a DB-API error is its OperationalError,
        # DatabaseError, ... of the same class name.
        return _failed(exc.orig, type(exc.orig).__name__)
    sa_exc = sys.modules.get("sqlalchemy.exc")
    if sa_exc is None or not isinstance(exc, sa_exc.SQLAlchemyError):
        return None
    if isinstance(exc, sa_exc.NoSuchModuleError):
        kind = str(exc).rpartition(":")[2].strip() or "?"
        return (
            f"DATABASE_URL names an unknown kind of database ({kind!r}); "
            "use sqlite:///PATH or postgresql+psycopg://USER@HOST/DB"
        )
    if isinstance(exc, sa_exc.ArgumentError):
        return "DATABASE_URL is not a database URL (e.g. sqlite:///teledispatch.db)"
    orig = getattr(exc, "orig", None)
    return _failed(orig if orig is not None else exc, type(exc).__name__)


def _failed(exc: BaseException, name: str) -> str:
    """The line for a failure of the database itself, from its driver's words (``name``
    when it has none)."""
    detail = str(exc).strip().splitlines()
    first = detail[0] if detail else name
    if len(first) > MAX_DETAIL:
        first = first[: MAX_DETAIL - 3] + "..."
    return f"cannot use the database (DATABASE_URL): {first}"
