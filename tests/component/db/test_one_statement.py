"""``one_statement``: a single statement committed as it runs, without a transaction block's
BEGIN and COMMIT round trips on PostgreSQL (the departure mark on every request's way out)."""

from __future__ import annotations

import sqlalchemy as sa

from teledispatch.db.engine import get_engine, one_statement


def test_the_statement_is_committed_and_postgresql_runs_it_in_autocommit(
    database_url: str,
) -> None:
    engine = get_engine(database_url)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t_one (v INTEGER)")
    postgresql = engine.dialect.name == "postgresql"
    with one_statement(engine) as conn:
        conn.execute(sa.text("INSERT INTO t_one (v) VALUES (1)"))
        if postgresql:  # psycopg's flag (sqlite3's means something else)
            assert getattr(conn.connection.driver_connection, "autocommit", None) is True
    other = sa.create_engine(database_url)
    try:
        with other.connect() as conn:
            assert conn.execute(sa.text("SELECT v FROM t_one")).scalars().all() == [1]
    finally:
        other.dispose()
    if postgresql:  # the pooled connection is back in transaction blocks for everyone else
        with engine.connect() as conn:
            assert getattr(conn.connection.driver_connection, "autocommit", None) is False
