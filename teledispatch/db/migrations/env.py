"""Alembic environment: runs on a connection handed in by :mod:`teledispatch.db.migrate`, or on
``-x url=…`` / ``DATABASE_URL`` when the ``alembic`` command is used by hand (``alembic.ini``)."""

from __future__ import annotations

import os
from logging.config import fileConfig

import sqlalchemy as sa
from alembic import context

from teledispatch.db.tables import add_postgresql_options, metadata

# Autogenerate renders the partial indexes' PostgreSQL predicates, which the tables add only
# when asked (importing the PostgreSQL dialect): a migration run imports it anyway.
add_postgresql_options()
target_metadata = metadata

if context.config.config_file_name is not None:
    fileConfig(context.config.config_file_name, disable_existing_loggers=False)


def _url() -> str:
    url = (
        context.get_x_argument(as_dictionary=True).get("url")
        or context.config.get_main_option("sqlalchemy.url")
        or os.environ.get("DATABASE_URL")
    )
    if not url:
        raise RuntimeError("give the database with -x url=..., sqlalchemy.url or DATABASE_URL")
    return url


def _configure_and_run(connection: sa.Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        # SQLite cannot ALTER most things; batch mode rebuilds the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _configure_and_run(connection)
        return
    engine = sa.create_engine(_url(), poolclass=sa.pool.NullPool)
    with engine.connect() as conn:
        _configure_and_run(conn)
        conn.commit()


def run_migrations_offline() -> None:
    context.configure(
        url=_url(),
        target_metadata=target_metadata,
        literal_binds=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
