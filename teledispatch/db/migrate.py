"""The schema in force is the one the migrations build (Alembic, in ``migrations/``).

Deployments run :func:`upgrade` once per release (``teledispatch db upgrade``, the migrate
job), before any worker. Every process also calls :func:`ensure_schema` before its first
statement: it checks once per database that it is at the newest revision and, if not, runs
the migrations itself, so a fresh SQLite file or a new PostgreSQL database just works.
Several processes may race to do it on first start: the losers find the revision at head
afterwards.

A database created by :func:`~teledispatch.db.tables.create_schema` (tests, and releases
before migrations) is *adopted*: stamped at the revision whose schema it holds, never
created again. Alembic is imported on first use, not with this module: the producer imports
``ensure_schema`` and most of its processes never run a migration.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

import sqlalchemy as sa

from teledispatch.db.engine import make_engine
from teledispatch.db.revision import SCRIPT_LOCATION, STORED_REVISION_SQL, is_head
from teledispatch.db.tables import batches_table, events_table, jobs_table, messages_table

if TYPE_CHECKING:
    from alembic.config import Config

#: The revision whose schema ``create_schema`` produced before the batches table (0002).
BASELINE = "0001"

_ready: set[str] = set()
_lock = threading.Lock()


def preload() -> None:
    """Import what a migration check needs (Alembic, Mako), without connecting anywhere: a
    worker does it before its pool forks, so no pool process pays for it on its first task."""
    import alembic.command
    import alembic.migration
    import alembic.script  # noqa: F401


def alembic_config(connection: sa.Connection | None = None) -> Config:
    """A config built in code: no ``alembic.ini`` is needed at run time, and the database
    URL (which may hold a password) travels as an object, never through a config file."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", SCRIPT_LOCATION)
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "no migration scripts found"
    return head


def current_revision(url: str) -> str | None:
    from alembic.migration import MigrationContext

    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()


def upgrade(url: str, revision: str = "head") -> str:
    """Bring the database at ``url`` to ``revision``; returns the revision it is now at.

    Safe to run concurrently from several migrate jobs only on PostgreSQL, where each
    revision's DDL runs in one transaction; run one migrate job per deployment regardless.
    """
    from alembic import command
    from alembic.migration import MigrationContext

    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            cfg = alembic_config(conn)
            ctx = MigrationContext.configure(conn)
            names = set(sa.inspect(conn).get_table_names())
            adopted = {jobs_table.name, messages_table.name} <= names
            if ctx.get_current_revision() is None and adopted:
                # A schema made before the outbox (0006) is at 0004 and gets the rest.
                if events_table.name in names:
                    stamp = "head"
                else:
                    stamp = "0004" if batches_table.name in names else BASELINE
                command.stamp(cfg, stamp)
            command.upgrade(cfg, revision)
        with engine.connect() as conn:
            now = MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()
    return now or "base"


def _at_head_quickly(url: str) -> bool:
    """True when the database already holds the head revision, checked with one SELECT."""
    from teledispatch.db.engine import get_engine

    try:
        with get_engine(url).connect() as conn:
            stored = conn.execute(sa.text(STORED_REVISION_SQL)).scalars()
            return is_head(list(stored))
    except sa.exc.ProgrammingError:
        return False  # no alembic_version table yet
    except sa.exc.OperationalError as exc:
        if "no such table" in str(exc):  # SQLite says so this way
            return False
        raise


def ensure_schema(url: str) -> None:
    """Migrate the database at ``url`` to head unless this process already saw it there."""
    if url in _ready:
        return
    with _lock:
        if url in _ready:
            return
        if _at_head_quickly(url):
            _ready.add(url)
            return
        head = head_revision()
        if current_revision(url) != head:
            try:
                upgrade(url)
            except Exception:
                if current_revision(url) != head:
                    raise
        _ready.add(url)


__all__ = [
    "BASELINE",
    "SCRIPT_LOCATION",
    "alembic_config",
    "current_revision",
    "ensure_schema",
    "head_revision",
    "preload",
    "upgrade",
]
