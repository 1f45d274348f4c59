"""``teledispatch send`` for every channel: flags become job defaults, files become jobs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from teledispatch.cli import main as cli
from teledispatch.cli import send as send_cmd
from teledispatch.config import Settings, parse_config
from teledispatch.producer import dry_run, submit


@pytest.fixture
def captured(monkeypatch: pytest.MonkeyPatch, db_url: str) -> list[dict[str, Any]]:
    table = {"base_url": "http://x", "access_key": "a", "secret": "s"}
    accounts = parse_config(
        {
            "accounts": {
                "nx": {"channel": "nxcloud.sms", **table},
                "us": {"channel": "uspeedo.sms", **table},
                "vms": {"channel": "volc.vms.append", **table},
            }
        }
    )
    cfg = Settings(accounts=accounts, redis_url="redis://x", database_url=db_url)
    calls: list[dict[str, Any]] = []
    real = submit.enqueue_stream

    def spy(account: str, recipients: Any, **kw: Any) -> submit.Enqueued:
        recipients = list(recipients)
        calls.append({"account": account, "recipients": recipients, **kw})
        kw["cfg"] = cfg
        return real(account, recipients, **kw)

    monkeypatch.setattr(send_cmd, "enqueue_stream", spy)
    real_dry_run = dry_run.dry_run
    monkeypatch.setattr(
        send_cmd, "dry_run", lambda *a, **kw: real_dry_run(*a, **{**kw, "cfg": cfg})
    )
    monkeypatch.setattr(submit, "wake", lambda *a: None)
    return calls


def test_uspeedo_flags(captured: list[dict[str, Any]], capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["send", "--account", "us", "--to", "+447911123001", "--template-id", "T1"]
    argv += ["--sender-id", "ACME", "--param", "1234", "--param", "5", "--json"]
    assert cli.main(argv) == 0
    assert captured[0]["defaults"] == {
        "template_id": "T1",
        "sender_id": "ACME",
        "template_params": ["1234", "5"],
    }
    assert json.loads(capsys.readouterr().out)["total"] == 1


def test_vms_task_open_id(captured: list[dict[str, Any]]) -> None:
    argv = ["send", "--account", "vms", "--to", "+8613800138000", "--task-open-id", "task-9"]
    assert cli.main(argv) == 0
    assert captured[0]["defaults"] == {"task_open_id": "task-9"}


def test_job_file_for_any_channel(captured: list[dict[str, Any]], tmp_path: Path) -> None:
    job = {
        "account": "us",
        "recipients": [{"phone": "+447911123002", "template_params": ["9"]}],
        "defaults": {"template_id": "T2", "sender_id": ""},
        "idempotency_key": "k-1",
    }
    path = tmp_path / "job.json"
    path.write_text(json.dumps(job))
    assert cli.main(["send", "--job", str(path)]) == 0
    call = captured[0]
    assert (call["account"], call["idempotency_key"]) == ("us", "k-1")
    assert call["defaults"] == {"template_id": "T2", "sender_id": ""}


def test_bad_csv_rows_reported_with_row_numbers(
    captured: list[dict[str, Any]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "r.csv"
    path.write_text("phone,content\n+8613800138000,hi\nnope,hi\n+8613800138001,\n")
    assert cli.main(["send", "--account", "nx", "--csv", str(path)]) == 2
    err = capsys.readouterr().err
    assert "row 3 phone = 'nope': must be a phone number with country code (E.164)" in err
    assert "row 4 content = None: is required" in err
    assert "nothing was enqueued (2 problems)" in err


def test_dry_run_validates_every_row_and_stores_nothing(
    captured: list[dict[str, Any]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "big.csv"
    rows = [f"+86139{i:08d},hello" for i in range(30_000)]
    rows[12_345] = "12,hello"
    rows[29_999] = "+8613900000000,hello"  # a duplicate of row 2
    path.write_text("phone,content\n" + "\n".join(rows) + "\n")
    argv = ["send", "--account", "nx", "--csv", str(path), "--dry-run"]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert "nothing was enqueued (2 problems)" in err
    assert "row 12347 phone = '12'" in err
    assert "row 30001 phone = '+8613900000000': duplicate recipient" in err
    assert captured == []  # enqueue_stream was never called

    rows[12_345], rows[29_999] = "+8613812345678,hello", "+8613812345679,hello"
    path.write_text("phone,content\n" + "\n".join(rows) + "\n")
    assert cli.main([*argv, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["valid"], report["total"], report["recipients"]) == (True, 30_000, 30_000)
    assert captured == []


def test_job_file_channel_must_be_the_accounts(
    captured: list[dict[str, Any]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import teledispatch.config as config

    accounts = parse_config({"accounts": {"nx": {"channel": "nxcloud.sms", "base_url": "x"}}})
    monkeypatch.setattr(config, "settings", lambda: Settings(accounts=accounts))
    job = {"account": "nx", "channel": "uspeedo.sms", "recipients": [{"phone": "+8613800138000"}]}
    path = tmp_path / "job.json"
    path.write_text(json.dumps({**job, "defaults": {"content": "hi"}}))
    assert cli.main(["send", "--job", str(path)]) == 2
    assert "channel 'uspeedo.sms' is not this account's channel (nxcloud.sms)" in (
        capsys.readouterr().err
    )
    assert captured == []
    path.write_text(json.dumps({**job, "channel": "nxcloud.sms", "defaults": {"content": "hi"}}))
    assert cli.main(["send", "--job", str(path)]) == 0
