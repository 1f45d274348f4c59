"""An unreachable PostgreSQL is one ``error:`` line and exit 2 (it was a 118-line traceback)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from teledispatch.cli import main as cli
from teledispatch.config import settings

#: A port nothing listens on: the connection is refused at once.
UNREACHABLE = "postgresql+psycopg://td:s3cret@127.0.0.1:1/teledispatch"


@pytest.fixture
def unreachable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    config = tmp_path / "teledispatch.toml"
    config.write_text('[accounts.nx]\nchannel = "nxcloud.sms"\nbase_url = "http://127.0.0.1:9"\n')
    monkeypatch.setenv("TELEDISPATCH_CONFIG", str(config))
    monkeypatch.setenv("DATABASE_URL", UNREACHABLE)
    settings.cache_clear()
    yield
    settings.cache_clear()


@pytest.mark.usefixtures("unreachable")
@pytest.mark.parametrize(
    "argv",
    [
        ["status", "some-job"],
        ["lookup", "--phone", "+8613800138000"],
        ["send", "--account", "nx", "--content", "hi", "--to", "+8613800138000"],
    ],
)
def test_unreachable_postgres_is_one_line(
    capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1, err
    assert err.startswith("error: cannot use the database (DATABASE_URL): ")
    assert "s3cret" not in err
