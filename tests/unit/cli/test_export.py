"""``teledispatch export``: every recipient once, in pages, as CSV or JSON lines."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import pytest
import sqlalchemy as sa

from teledispatch import exports
from teledispatch.cli import export
from teledispatch.cli.main import main
from teledispatch.config import settings
from teledispatch.db import jobs as jobs_db
from teledispatch.db import messages as messages_db
from teledispatch.db.engine import get_engine
from teledispatch.db.tables import create_schema

N = 2 * exports.PAGE + 7  # three pages, the last one short


@pytest.fixture
def engine(db_url: str) -> sa.Engine:
    engine = get_engine(db_url)
    create_schema(engine)
    job = {"id": "j", "account": "nx", "channel": "nxcloud.sms", "total": N, "parts": 1}
    job |= {"content_hash": "h", "created_at": 0.0}
    rows: list[dict[str, Any]] = [
        {"id": f"j-{i}", "job_id": "j", "seq": i, "account": "nx", "channel": "nxcloud.sms"}
        | {"phone": f"+86139{i:08d}", "payload": json.dumps({"content": f"hi {i}"})}
        | {"due_at": 0.0, "created_at": 0.0, "updated_at": 0.0}
        for i in range(N)
    ]
    with engine.begin() as conn:
        jobs_db.insert_jobs(conn, [job])
        messages_db.insert_messages(conn, rows)
    return engine


def test_every_recipient_once_over_several_pages(engine: sa.Engine) -> None:
    out = io.StringIO()
    assert export.write(exports.rows(engine, "j"), "jsonl", out) == N
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert len({r["message_id"] for r in lines}) == N
    first = next(r for r in lines if r["message_id"] == "j-5")
    assert first["fields"] == {"content": "hi 5"} and first["status"] == "queued"
    assert first["created_at"] == "1970-01-01T00:00:00.000Z" and first["sent_at"] is None


def test_csv_has_fixed_columns_and_the_fields_as_json(engine: sa.Engine) -> None:
    out = io.StringIO()
    export.write(exports.rows(engine, "j"), "csv", out)
    table = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert len(table) == N and tuple(table[0]) == exports.COLUMNS
    assert json.loads(table[0]["fields"])["content"].startswith("hi ")


def test_cli_unknown_job_is_one_line_and_exit_2(
    engine: sa.Engine,
    db_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.delenv("TELEDISPATCH_CONFIG", raising=False)
    settings.cache_clear()
    try:
        assert main(["export", "nope"]) == 2
        assert capsys.readouterr().err == "error: job 'nope' not found\n"
        assert main(["export", "j", "--format", "jsonl"]) == 0
        assert len(capsys.readouterr().out.splitlines()) == N
    finally:
        settings.cache_clear()
