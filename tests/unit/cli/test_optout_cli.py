"""``teledispatch optout``: add, remove, import and list, on an account's list and the global
one; a bad number or line changes nothing and exits 2 naming it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from teledispatch.cli.main import main
from teledispatch.config import settings


@pytest.fixture
def cli(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    config = tmp_path / "teledispatch.toml"
    config.write_text('[accounts.nx]\nchannel = "nxcloud.sms"\nbase_url = "http://x"\n')
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("TELEDISPATCH_CONFIG", str(config))
    settings.cache_clear()
    try:
        yield tmp_path
    finally:
        settings.cache_clear()


def listed(capsys: pytest.CaptureFixture[str], *extra: str) -> list[str]:
    capsys.readouterr()
    assert main(["optout", "list", *extra]) == 0
    return capsys.readouterr().out.split()


def test_add_list_remove(cli: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["optout", "add", "+8613800138001", "8613800138000", "--account", "nx"]) == 0
    assert "2 of 2 added (account nx)" in capsys.readouterr().out
    assert listed(capsys, "--account", "nx") == ["+8613800138000", "+8613800138001"]
    assert listed(capsys) == []  # the global list is another list
    assert main(["optout", "remove", "+8613800138000", "--account", "nx"]) == 0
    assert listed(capsys, "--account", "nx") == ["+8613800138001"]


def test_bad_numbers_add_nothing(cli: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["optout", "add", "+8613800138001", "12"]) == 2
    assert "phones[1] = '12'" in capsys.readouterr().err
    assert listed(capsys) == []


def test_import_a_csv_or_a_plain_list(cli: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (cli / "a.csv").write_text("name,phone\nAna,+8613800138000\nBo,\n")
    (cli / "b.txt").write_text("# opted out by SMS STOP\n+12125551234\n\n8613800138000\n")
    assert main(["optout", "import", str(cli / "a.csv")]) == 0
    assert main(["optout", "import", str(cli / "b.txt")]) == 0
    assert listed(capsys) == ["+12125551234", "+8613800138000"]


def test_an_import_with_a_bad_line_imports_nothing(
    cli: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (cli / "c.txt").write_text("+8613800138000\nnot a number\n")
    assert main(["optout", "import", str(cli / "c.txt")]) == 2
    assert "line 2 'not a number'" in capsys.readouterr().err
    assert listed(capsys) == []
