"""The migrations build exactly the schema the models describe, on SQLite and PostgreSQL.

``compare_metadata`` is what ``alembic revision --autogenerate`` uses: an empty diff means a
database made by ``teledispatch db upgrade`` and one made by ``create_schema`` are the same,
and it turns non-empty the moment someone changes ``teledispatch/db/tables.py`` without a revision.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from teledispatch.cli.main import main
from teledispatch.db.engine import make_engine
from teledispatch.db.migrate import alembic_config, current_revision, head_revision, upgrade
from teledispatch.db.tables import create_schema, metadata

PG_ADMIN_URL = os.environ.get(
    "TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


def _pg_database() -> Iterator[str]:
    try:
        admin = sa.create_engine(
            PG_ADMIN_URL, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3}
        )
        with admin.connect() as conn:
            name = f"td_mig_{uuid.uuid4().hex[:10]}"
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    except Exception:
        pytest.skip(f"PostgreSQL not reachable at {PG_ADMIN_URL}")
    try:
        yield f"{PG_ADMIN_URL.rsplit('/', 1)[0]}/{name}"
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'mig.db'}"
    else:
        yield from _pg_database()


def _diff(url: str) -> list[Any]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"compare_type": True})
            return list(compare_metadata(ctx, metadata))
    finally:
        engine.dispose()


def _index_names(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return {str(i["name"]) for i in sa.inspect(engine).get_indexes("messages")}
    finally:
        engine.dispose()


def test_upgrade_on_fresh_database_matches_models(fresh_url: str) -> None:
    assert current_revision(fresh_url) is None
    assert upgrade(fresh_url) == head_revision()
    assert current_revision(fresh_url) == head_revision()
    assert _diff(fresh_url) == []
    expected = {str(i.name) for i in metadata.tables["messages"].indexes if i.name is not None}
    assert expected and expected <= _index_names(fresh_url)
    # Running it again is a no-op, as a migrate job restarted by its orchestrator must be.
    assert upgrade(fresh_url) == head_revision()


def test_database_made_by_create_schema_is_adopted(fresh_url: str) -> None:
    engine = make_engine(fresh_url)
    create_schema(engine)
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO jobs (id, account, channel, total, parts, defaults, content_hash, "
            "created_at) VALUES ('j1', 'a', 'nxcloud.sms', 1, 1, '{}', 'h', 0)"
        )
    engine.dispose()
    assert upgrade(fresh_url) == head_revision()
    assert _diff(fresh_url) == []
    engine = make_engine(fresh_url)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT id FROM jobs").scalars().all() == ["j1"]
    engine.dispose()


def test_downgrade_to_base_removes_the_schema(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'down.db'}"
    upgrade(url)
    engine = make_engine(url)
    with engine.begin() as conn:
        command.downgrade(alembic_config(conn), "base")
    assert set(sa.inspect(engine).get_table_names()) <= {"alembic_version"}
    engine.dispose()


def test_cli_db_upgrade(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    assert main(["db", "upgrade", "--url", url]) == 0
    assert capsys.readouterr().out.strip() == f"database at revision {head_revision()}"
    assert main(["db", "current", "--url", url]) == 0
    assert capsys.readouterr().out.strip() == head_revision()
