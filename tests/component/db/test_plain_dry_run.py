"""``send --dry-run`` without SQLAlchemy (``producer.quick_dry_run``): its two reads (the
suppression lists, the account's backlog) answer as their SQLAlchemy namesakes, and the
whole report equals the SQLAlchemy path's, on SQLite and PostgreSQL. It declines (None),
before any recipient is read, whenever it cannot be sure; a database failing once recipients
are being read is reported in the words the SQLAlchemy path uses."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from teledispatch import config
from teledispatch.cli.failures import database_problem
from teledispatch.db import messages as messages_db
from teledispatch.db import optouts as optouts_db
from teledispatch.db import plain
from teledispatch.db.engine import get_engine
from teledispatch.db.messages import plain as messages_plain
from teledispatch.db.migrate import ensure_schema
from teledispatch.db.optouts import plain as optouts_plain
from teledispatch.db.tables import messages_table
from teledispatch.producer import dry_run, quick_dry_run, submit
from teledispatch.validation import ValidationFailed

CONFIG = """
[accounts.nx]
channel = "nxcloud.sms"
base_url = "http://nx.test"
max_messages_per_second = 2.5
max_requests_per_second = 1
max_batch = 50
prices = { "86" = 0.05, "*" = 0.08 }
quiet_hours = "21:00-08:00"

[accounts.us]
channel = "uspeedo.sms"
base_url = "http://us.test"
max_messages_per_day = 2
"""
CN = [f"+86138001380{i:02d}" for i in range(8)]
#: On ``nx``'s list, on the global list, on ``us``'s list only.
OPTED_NX, OPTED_ALL, OPTED_US = CN[1], CN[2], CN[3]
LATER = datetime(2030, 1, 1, 9, 30, tzinfo=UTC)


@pytest.fixture
def db(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The lists, and a backlog of ``nx`` (queued and deferred rows, a sent one not counted);
    the environment names the database and the config file."""
    path = tmp_path / "teledispatch.toml"
    path.write_text(CONFIG)
    monkeypatch.setenv("TELEDISPATCH_CONFIG", str(path))
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setattr(submit, "wake", lambda *a: None)
    config.settings.cache_clear()
    ensure_schema(database_url)
    job = submit.enqueue_stream("nx", [{"phone": p} for p in CN[4:]], defaults={"content": "x"})
    m = messages_table.c
    with get_engine(database_url).begin() as conn:
        optouts_db.add(conn, "nx", [OPTED_NX], 1.0)
        optouts_db.add(conn, optouts_db.GLOBAL_OPTOUT, [OPTED_ALL], 1.0)
        optouts_db.add(conn, "us", [OPTED_US], 1.0)
        ids = sorted(r[0] for r in conn.execute(sa.select(m.id).where(m.job_id == job.job_id)))
        conn.execute(sa.update(messages_table).where(m.id == ids[0]).values(status="deferred"))
        conn.execute(sa.update(messages_table).where(m.id == ids[1]).values(status="sent"))
    yield database_url
    config.settings.cache_clear()


def test_the_plain_reads_answer_as_the_statements(db: str) -> None:
    conn = plain.connect(db)
    assert conn is not None
    with conn, get_engine(db).connect() as sa_conn:
        for account in ("nx", "us", "other"):
            assert optouts_plain.suppressed_among(conn, account, CN) == (
                optouts_db.suppressed_among(sa_conn, account, CN)
            )
            assert messages_plain.waiting_count(conn, account) == (
                messages_db.waiting_count(sa_conn, account)
            )
        assert optouts_plain.suppressed_among(conn, "nx", CN) == {OPTED_NX, OPTED_ALL}
        assert optouts_plain.suppressed_among(conn, "nx", []) == set()
        assert messages_plain.waiting_count(conn, "nx") == 3


def _both(account: str, recipients: list[dict[str, Any]], **kw: Any) -> tuple[Any, Any]:
    quick = quick_dry_run.dry_run(account, recipients, **kw)
    assert quick is not None
    return quick, dry_run.dry_run(account, recipients, **kw)


@pytest.mark.parametrize(
    "kw",
    [
        {},
        {"priority": "high"},
        {"quiet_hours": "01:00-02:00", "allow_duplicates": True},
        {"defaults": {"content": "Hi {name}"}},
    ],
)
def test_the_report_is_the_sqlalchemy_paths(db: str, kw: dict[str, Any]) -> None:
    rows: list[dict[str, Any]] = [{"phone": p, "name": "Ann"} for p in CN]
    rows += [{"phone": "+447911123001", "name": "Bob"}, {"phone": "12", "name": "x"}]
    rows.append({"phone": CN[0], "name": "again"})
    kw = {"defaults": {"content": "hé {name}"}, "not_before": LATER, **kw}
    quick, full = _both("nx", rows, **kw)
    assert quick == full
    assert (quick.suppressed, quick.backlog) == (2, 3)
    assert quick.problems_total >= 1 and quick.eta is not None and quick.cost is not None
    us = [{"phone": p, "template_id": "T", "sender_id": "S"} for p in ("+447911123001", OPTED_US)]
    assert _both("us", us, not_before=LATER)[0] == _both("us", us, not_before=LATER)[1]


def test_a_job_wide_problem_is_raised_the_same_way(db: str) -> None:
    for call in (quick_dry_run.dry_run, dry_run.dry_run):
        with pytest.raises(ValidationFailed) as exc:
            call("nx", [{"phone": CN[0]}], defaults={"content": "x"}, quiet_hours="25:00-01:00")
        assert exc.value.problems[0].field == "quiet_hours"


def test_what_it_cannot_be_sure_of_is_left_to_the_full_path(
    db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = [{"phone": CN[0]}]
    # An account the file does not hold: the full path words the error.
    assert quick_dry_run.dry_run("nobody", rows, defaults={"content": "x"}) is None
    # A config file only the models can judge.
    odd = tmp_path / "odd.toml"
    odd.write_text(CONFIG + 'timeout_s = "5"\n')
    monkeypatch.setenv("TELEDISPATCH_CONFIG", str(odd))
    assert quick_dry_run.config() is None
    assert quick_dry_run.dry_run("nx", rows, defaults={"content": "x"}) is None
    monkeypatch.setenv("TELEDISPATCH_CONFIG", str(tmp_path / "teledispatch.toml"))
    # A schema behind the migrations: nothing read from it.
    with get_engine(db).begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '0001'"))
    read: list[int] = []

    def recipients() -> Iterator[dict[str, Any]]:
        read.append(1)
        yield {"phone": CN[0], "content": "x"}

    assert quick_dry_run.dry_run("nx", recipients()) is None
    assert read == []


def test_a_failure_while_reading_is_worded_as_the_sqlalchemy_paths(
    db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def locked(*_: Any) -> int:
        raise sqlite3.OperationalError("database is locked")

    monkeypatch.setattr(messages_plain, "waiting_count", locked)
    with pytest.raises(plain.Failed) as exc:
        quick_dry_run.dry_run("nx", [{"phone": CN[0]}], defaults={"content": "x"})
    assert database_problem(exc.value) == (
        "cannot use the database (DATABASE_URL): database is locked"
    )
    wrapped = sa.exc.OperationalError(
        "SELECT 1", {}, sqlite3.OperationalError("database is locked")
    )
    assert database_problem(wrapped) == database_problem(exc.value)
