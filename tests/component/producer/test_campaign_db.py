"""Segments stored by every insert path, and a dry run that writes nothing, on SQLite and on a
real PostgreSQL (where a new job's rows go by COPY)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from teledispatch.config import Settings
from teledispatch.db.engine import dispose_engines, get_engine
from teledispatch.db.messages import COPY_MIN_ROWS
from teledispatch.db.tables import jobs_table, messages_table
from teledispatch.producer import submit
from teledispatch.producer.dry_run import dry_run
from teledispatch.producer.lookup import job_status
from teledispatch.producer.submit import enqueue_stream
from tests.support import make_settings

PG_ADMIN_URL = os.environ.get(
    "TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'td.db'}"
        return
    admin = sa.create_engine(
        PG_ADMIN_URL, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3}
    )
    try:
        with admin.connect() as conn:
            name = f"td_{uuid.uuid4().hex[:12]}"
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    except sa.exc.OperationalError:
        admin.dispose()
        pytest.skip(f"PostgreSQL not reachable at {PG_ADMIN_URL}")
    yield f"{PG_ADMIN_URL.rsplit('/', 1)[0]}/{name}"
    dispose_engines(close=True)
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.dispose()


@pytest.fixture
def cfg(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setattr(submit, "wake", lambda *a: None)
    return make_settings(database_url, prices={"86": 0.05}, max_messages_per_second=100)


def _counts(cfg: Settings) -> tuple[int, int]:
    with get_engine(cfg.database_url).connect() as conn:
        count = sa.select(sa.func.count())
        return (
            int(conn.execute(count.select_from(jobs_table)).scalar_one()),
            int(conn.execute(count.select_from(messages_table)).scalar_one()),
        )


def test_segments_stored_and_dry_run_writes_nothing(cfg: Settings) -> None:
    n = COPY_MIN_ROWS * 2  # enough for COPY on PostgreSQL
    recipients = [{"phone": f"+86139{i:08d}", "name": "Ana" if i % 2 else "李雷"} for i in range(n)]
    defaults = {"content": "Hi {name}, " + "x" * 150}
    job = enqueue_stream("nx", recipients, defaults=defaults, cfg=cfg)
    # "Hi Ana, " + 150 = 158 septets: 1 part; with 李雷 the text is UCS-2 of 160 units: 3 parts.
    assert job_status(job.job_id, cfg=cfg).segments == {"gsm7": n // 2, "ucs2": 3 * n // 2}
    before = _counts(cfg)
    report = dry_run("nx", recipients, defaults=defaults, cfg=cfg)
    assert _counts(cfg) == before == (1, n)
    assert (report.recipients, report.backlog) == (n, n)
    assert report.segments == {"gsm7": n // 2, "ucs2": 3 * n // 2}
    assert report.cost == pytest.approx(0.05 * (n // 2 + 3 * n // 2))
