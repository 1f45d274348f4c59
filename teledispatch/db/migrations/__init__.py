"""Schema migrations (Alembic), shipped inside the package so ``pip install .`` carries them.

:func:`upgrade` is what deployments run (``teledispatch db upgrade``, the migrate Job) and what
the app should call instead of :func:`producer.store.create_schema` once it switches over.
A database created earlier by ``create_schema`` holds exactly the initial revision's schema,
so it is *adopted* (stamped at that revision) rather than created again; one created by today's
``create_schema`` (it has ``batches``) holds the newest schema and is stamped at head.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from teledispatch.db.tables import batches_table, jobs_table, make_engine, messages_table

SCRIPT_LOCATION = str(Path(__file__).resolve().parent)
#: The revision whose schema ``producer.store.create_schema`` produced before migrations.
BASELINE = "0001"


def alembic_config(connection: sa.Connection | None = None) -> Config:
    """A config built in code: no ``alembic.ini`` is needed at run time, and the database
    URL (which may hold a password) travels as an object, never through a config file."""
    cfg = Config()
    cfg.set_main_option("script_location", SCRIPT_LOCATION)
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "no migration scripts found"
    return head


def current_revision(url: str) -> str | None:
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
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            cfg = alembic_config(conn)
            ctx = MigrationContext.configure(conn)
            names = set(sa.inspect(conn).get_table_names())
            if (
                ctx.get_current_revision() is None
                and {
                    jobs_table.name,
                    messages_table.name,
                }
                <= names
            ):
                command.stamp(cfg, "head" if batches_table.name in names else BASELINE)
            command.upgrade(cfg, revision)
        with engine.connect() as conn:
            now = MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()
    return now or "base"


__all__ = ["BASELINE", "alembic_config", "current_revision", "head_revision", "upgrade"]
