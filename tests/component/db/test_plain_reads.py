"""The CLI's reads without SQLAlchemy (``teledispatch.quick_reads``) answer exactly as the
SQLAlchemy path, on SQLite and PostgreSQL, and decline (None) whenever they cannot be sure:
a database not created yet, a schema behind the migrations, a URL given otherwise, a config
file only the models can judge."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from teledispatch import config, quick_reads
from teledispatch.db import attempts as attempts_db
from teledispatch.db import plain
from teledispatch.db.attempts import AttemptRow
from teledispatch.db.engine import get_engine
from teledispatch.db.migrate import ensure_schema
from teledispatch.db.tables import messages_table
from teledispatch.outcomes import JobNotFound
from teledispatch.producer import submit
from teledispatch.producer.lookup import job_status as full_status
from teledispatch.producer.lookup import lookup as full_lookup

CONFIG = """
[accounts.nx]
channel = "nxcloud.sms"
base_url = "http://nx.test"
access_key = "ak"
secret = "sk"
app_key = "app"
max_messages_per_second = 2.5
linger_ms = 0
"""
CN = ("+8613800138000", "+8613800138001", "+8613800138002", "+8613800138003")


@pytest.fixture
def db(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[str, list[str]]]:
    """A database with an active job (statuses of every kind, a routed message with its
    attempts) and a finished one; the environment names it and the config file."""
    path = tmp_path / "teledispatch.toml"
    path.write_text(CONFIG)
    monkeypatch.setenv("TELEDISPATCH_CONFIG", str(path))
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setattr(submit, "wake", lambda *a: None)
    config.settings.cache_clear()
    cfg = config.settings()
    ensure_schema(database_url)
    active = submit.enqueue_stream("nx", [{"phone": p} for p in CN], defaults={"content": "hi"})
    done = submit.enqueue_stream("nx", [{"phone": CN[0]}], defaults={"content": "é" * 80})
    m = messages_table.c
    later = time.time() + 3600
    with get_engine(cfg.database_url).begin() as conn:
        conn.execute(sa.update(messages_table).where(m.job_id == done.job_id).values(status="sent"))
        ids = [r[0] for r in conn.execute(sa.select(m.id).where(m.job_id == active.job_id))]
        ids.sort()
        changes: list[dict[str, Any]] = [
            {"status": "unknown"},
            {"status": "deferred", "due_at": later, "provider_id": "P-1"},
            {"status": "failed", "error_code": "E1", "error_text": "no", "route": "r"},
        ]
        for message_id, values in zip(ids, changes, strict=False):
            conn.execute(sa.update(messages_table).where(m.id == message_id).values(**values))
        attempts_db.insert(conn, [AttemptRow(ids[2], "other", 1.5, "refused", "X", "why")])
    yield database_url, [active.job_id, done.job_id]
    config.settings.cache_clear()


def test_status_and_lookup_answer_as_the_sqlalchemy_path(db: tuple[str, list[str]]) -> None:
    _, jobs = db
    now = time.time()
    for job_id in jobs:
        quick = quick_reads.job_status(job_id, now=now)
        assert quick is not None
        assert quick == full_status(job_id, now=now)
    assert quick_reads.job_status(jobs[0], now=now).eta is not None  # type: ignore[union-attr]
    for phone in CN:
        assert quick_reads.lookup(phone=phone) == full_lookup(phone=phone)
    routed = [v for v in quick_reads.lookup(phone=CN[2]) or [] if v.route]
    assert routed and routed[0].history[0].account == "other"
    assert quick_reads.lookup(provider_id="P-1") == full_lookup(provider_id="P-1")
    assert quick_reads.lookup(phone=CN[0], limit=1) == full_lookup(phone=CN[0], limit=1)


def test_an_unknown_job_is_not_found_either_way(db: tuple[str, list[str]]) -> None:
    with pytest.raises(JobNotFound, match="no job 'nojob'"):
        quick_reads.job_status("nojob")


def test_a_schema_behind_the_migrations_is_left_to_the_full_path(
    db: tuple[str, list[str]],
) -> None:
    url, jobs = db
    with get_engine(url).begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '0001'"))
    assert quick_reads.job_status(jobs[0]) is None
    assert quick_reads.lookup(phone=CN[0]) is None


def test_a_missing_sqlite_file_is_left_to_the_engine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "none.db"
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{missing}")
    monkeypatch.setenv("TELEDISPATCH_CONFIG", str(tmp_path / "absent.toml"))
    assert quick_reads.job_status("x") is None  # the config file named does not exist
    monkeypatch.delenv("TELEDISPATCH_CONFIG")
    monkeypatch.chdir(tmp_path)
    assert quick_reads.job_status("x") is None
    assert not missing.exists()  # nothing was created on the way


@pytest.mark.parametrize(
    "url",
    [
        "sqlite://",
        "sqlite:///:memory:",
        "sqlite:///td.db?timeout=5",
        "postgresql://u@h/db",
        "postgresql+psycopg://u@h/db?sslmode=require",
        "postgresql+psycopg:///db",
        "postgresql+psycopg://u:pw@h:99999/db",  # its error is SQLAlchemy's to word
        "mysql://u@h/db",
    ],
)
def test_urls_given_otherwise_are_left_to_sqlalchemy(url: str) -> None:
    assert plain.connect(url) is None


def test_a_config_the_quick_check_cannot_judge_takes_the_full_path(
    db: tuple[str, list[str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "odd.toml"
    path.write_text(CONFIG + 'timeout_s = "5"\n')  # pydantic's lax mode may take it: not ours
    monkeypatch.setenv("TELEDISPATCH_CONFIG", str(path))
    assert quick_reads.job_status(db[1][0]) is None
