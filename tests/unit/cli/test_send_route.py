"""``teledispatch send --route``: a job on a route from the config file."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from teledispatch import config
from teledispatch.cli import main as cli
from teledispatch.producer import routed, submit

CONFIG = """
[accounts.nx]
channel = "nxcloud.sms"
base_url = "http://x"

[accounts.us]
channel = "uspeedo.sms"
base_url = "http://y"

[routes.sms]
"86" = ["nx", "us"]
"*" = ["us"]

[routes.sms.us]
template_id = "T1"
sender_id = "ACME"
"""


@pytest.fixture
def configured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    path = tmp_path / "teledispatch.toml"
    path.write_text(CONFIG)
    monkeypatch.setenv("TELEDISPATCH_CONFIG", str(path))
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'td.db'}")
    monkeypatch.setattr(submit, "wake", lambda *a: None)
    monkeypatch.setattr(routed, "read_circuit", lambda url, account: None)
    config.settings.cache_clear()
    yield
    config.settings.cache_clear()


def test_send_on_a_route(configured: None, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["send", "--route", "sms", "--to", "+8613800138000", "--to", "+447911123456"]
    assert cli.main([*argv, "--content", "hi", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["total"] == 2
    assert cli.main([*argv, "--content", "hi", "--dry-run", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["valid"], report["total"], report["route"]) == (True, 2, "sms")


def test_route_mistakes_are_one_line_and_exit_2(
    configured: None, capsys: pytest.CaptureFixture[str]
) -> None:
    both = ["send", "--route", "sms", "--account", "nx", "--to", "+8613800138000"]
    assert cli.main([*both, "--content", "hi"]) == 2
    assert "give --account or --route (exactly one)" in capsys.readouterr().err
    long = ["send", "--route", "sms", "--to", "+8613800138000", "--content", "x" * 600]
    assert cli.main(long) == 2
    err = capsys.readouterr().err
    assert "template_params" in err and "(via us)" in err and "Traceback" not in err


def test_dry_run_on_a_route_reports_like_an_account_dry_run(
    configured: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from teledispatch.db import optouts as optouts_db
    from teledispatch.db.engine import get_engine
    from teledispatch.db.migrate import ensure_schema

    url = config.settings().database_url
    ensure_schema(url)
    with get_engine(url).begin() as conn:
        optouts_db.add(conn, "nx", ["+8613800138001"], 0.0)
    argv = ["send", "--route", "sms", "--content", "Hi {name}", "--dry-run", "--json"]
    rows = [
        "phone,name",
        "+8613800138000,Ann",
        "+8613800138001,Bo",  # on nx's list: the first member of +86
        "+8613800138000,Ann",  # a duplicate
        "12,Cy",  # not a phone number
        "+447911123456,Di",  # on us only: a template carries the text, no segments
    ]
    path = tmp_path / "r.csv"
    path.write_text("\n".join(rows) + "\n")
    assert cli.main([*argv, "--csv", str(path)]) == 2
    out = capsys.readouterr()
    report = json.loads(out.out)
    assert report["route"] == "sms"
    assert (report["recipients"], report["invalid"], report["duplicates"]) == (3, 2, 1)
    assert report["suppressed"] == 1
    assert report["segments"] == {"gsm7": 1}
    assert {p["index"] for p in report["problems"]} == {2, 3}
    assert "row 5 phone" in out.err
