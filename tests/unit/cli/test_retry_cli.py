"""``teledispatch retry``: JSON and text answers, an unknown job, a status it does not take."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from teledispatch.cli import main as cli
from teledispatch.config import settings
from teledispatch.db.engine import get_engine
from teledispatch.db.tables import messages_table
from teledispatch.producer import submit

ACCOUNT = '[accounts.nx]\nchannel = "nxcloud.sms"\nbase_url = "http://127.0.0.1:9"\n'


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    config = tmp_path / "teledispatch.toml"
    config.write_text(ACCOUNT, encoding="utf-8")
    monkeypatch.setenv("TELEDISPATCH_CONFIG", str(config))
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'td.db'}")
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:9/0")
    monkeypatch.setattr(submit, "wake", lambda *a: None)
    settings.cache_clear()
    yield tmp_path
    settings.cache_clear()


def _job_with_failures(capsys: pytest.CaptureFixture[str]) -> str:
    argv = ["send", "--account", "nx", "--content", "hi", "--json"]
    argv += ["--to", "+8613800138000", "--to", "+8613800138001", "--to", "+8613800138002"]
    assert cli.main(argv) == 0
    job_id: str = json.loads(capsys.readouterr().out)["job_id"]
    c = messages_table.c
    with get_engine(settings().database_url).begin() as conn:
        for i, (status, text) in enumerate([("failed", "refused"), ("unknown", "timed out")]):
            conn.execute(
                sa.update(messages_table)
                .where(c.id == f"{job_id}-{i}")
                .values(status=status, error_code="E", error_text=text)
            )
    return job_id


def test_retry_answers_in_json_and_text(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    job_id = _job_with_failures(capsys)
    assert cli.main(["retry", job_id, "--status", "failed", "--status", "unknown", "--json"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["retried"] == 1 and [s["count"] for s in answer["skipped"]] == [1]
    assert cli.main(["retry", job_id, "--error-code", "E", "X"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"retried 0 messages as new attempts of job {job_id}"
    assert out[1].startswith("  skipped 1: already retried")


def test_an_unknown_job_or_status_is_refused(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["retry", "nope"]) == 1
    assert capsys.readouterr().err == "error: no job 'nope'\n"
    with pytest.raises(SystemExit) as stop:
        cli.main(["retry", "nope", "--status", "sent"])
    assert stop.value.code == 2
