"""Every mistake on the command line is one ``error:`` line and exit 2, and stores nothing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from teledispatch.cli import main as cli
from teledispatch.config import settings
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


def one_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """Run the CLI; assert exit 2 and exactly one ``error:`` line on stderr; return it."""
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def send(*extra: str) -> list[str]:
    return ["send", "--account", "nx", "--content", "hi", *extra]


def test_missing_csv_file(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    line = one_error(send("--csv", str(env / "nope.csv")), capsys)
    assert "nope.csv" in line and "No such file" in line
    assert not (env / "td.db").exists()


@pytest.mark.parametrize(
    ("value", "says"),
    [("tomorrow", "not an ISO 8601 time"), ("2026-05-01T09:00", "no time zone")],
)
def test_bad_not_before(
    env: Path, capsys: pytest.CaptureFixture[str], value: str, says: str
) -> None:
    line = one_error(send("--to", "+8613800138000", "--not-before", value), capsys)
    assert "--not-before" in line and says in line
    assert not (env / "td.db").exists()


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("{not json", "Invalid JSON"),
        (
            json.dumps({"account": "nx", "recipients": [{"phone": "+8613800138000"}], "colour": 1}),
            "colour",
        ),
    ],
)
def test_bad_job_file(env: Path, capsys: pytest.CaptureFixture[str], text: str, says: str) -> None:
    path = env / "job.json"
    path.write_text(text, encoding="utf-8")
    line = one_error(["send", "--job", str(path)], capsys)
    assert "job.json: not a valid job" in line and says in line


def test_gbk_csv_names_the_encoding(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = env / "gbk.csv"
    path.write_bytes("phone,content\n+8613800138000,你好\n".encode("gbk"))
    line = one_error(send("--csv", str(path)), capsys)
    assert "not utf-8-sig text" in line and "--encoding" in line
    assert cli.main([*send("--csv", str(path)), "--encoding", "gbk", "--dry-run"]) == 0
    assert "recipients   1" in capsys.readouterr().out


def test_quoted_header_is_accepted(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = env / "q.csv"
    path.write_text('"phone","content"\n"+8613800138000","hi, there"\n', encoding="utf-8")
    assert cli.main(["send", "--account", "nx", "--csv", str(path), "--dry-run"]) == 0
    assert "recipients   1" in capsys.readouterr().out


def test_row_with_an_extra_cell_is_an_error(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = env / "x.csv"
    path.write_text("phone,content\n+8613800138000,hi\n+8613800138001,hi,there\n")
    line = one_error(["send", "--account", "nx", "--csv", str(path)], capsys)
    assert "row 3 has 1 more cell" in line
    assert not (env / "td.db").exists()


def test_long_value_is_quoted_as_a_prefix(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = env / "long.csv"
    path.write_text("phone,content,colour\n+8613800138000,hi," + "9" * 1500 + "\n")
    assert cli.main(["send", "--account", "nx", "--csv", str(path)]) == 2
    err = capsys.readouterr().err
    assert "row 2 colour" in err and "9" * 50 in err
    assert "9" * 100 not in err and "Traceback" not in err


def test_unknown_config_table_suggests_the_near_match(
    env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (env / "teledispatch.toml").write_text(ACCOUNT.replace("accounts.nx", "acounts.x"))
    line = one_error(["lookup", "--phone", "+8613800138000"], capsys)
    assert "[acounts]" in line and "did you mean [accounts]?" in line


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("foo://bar", "unknown kind of database ('foo')"),
        ("not a url", "is not a database URL"),
        ("sqlite:////nonexistent-dir/sub/td.db", "unable to open database file"),
    ],
)
def test_unusable_database(
    env: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    url: str,
    says: str,
) -> None:
    monkeypatch.setenv("DATABASE_URL", url)
    settings.cache_clear()
    line = one_error(["status", "some-job"], capsys)
    assert says in line
    line = one_error(send("--to", "+8613800138000"), capsys)
    assert says in line


def test_national_number_lookup(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    line = one_error(["lookup", "--phone", "13800138000"], capsys)
    assert "country code" in line


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        cli.main(["--version"])
    assert stop.value.code == 0
    assert capsys.readouterr().out.startswith("teledispatch ")


@pytest.mark.parametrize("shell", ["bash", "zsh"])
def test_completion_script(capsys: pytest.CaptureFixture[str], shell: str) -> None:
    assert cli.main(["completion", shell]) == 0
    script = capsys.readouterr().out
    assert "complete -o filenames -F _teledispatch teledispatch" in script
    assert "send) words=" in script and "--not-before" in script and "--encoding" in script


def test_a_dry_run_checks_the_lane_options_as_a_send_does(
    env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = send("--to", "+8613800138000", "--ttl", "-5", "--dry-run")
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert "ttl_s" in err and "> 0" in err
    assert not (env / "td.db").exists()


@pytest.mark.parametrize("dry_run", [[], ["--dry-run"]])
def test_an_unsafe_callback_url_is_one_line(
    env: Path, capsys: pytest.CaptureFixture[str], dry_run: list[str]
) -> None:
    argv = send("--to", "+8613800138000", "--callback-url", "http://10.0.0.7/hook", *dry_run)
    assert cli.main(argv) == 2
    # A refused job's usual shape: the verdict, then one line per problem (here one).
    head, problem = capsys.readouterr().err.splitlines()
    assert head.startswith("error: job rejected, nothing was enqueued (1 problem)")
    rule = "scheme 'http' is not allowed (allowed: https)"
    assert problem.strip() == f"callback_url = 'http://10.0.0.7/hook': {rule}"
    assert not (env / "td.db").exists()
