"""The CLI's parsing rules for operator verbs, and the one-line error for a missing extra."""

from __future__ import annotations

import importlib.util
from typing import Any

import pytest

from teledispatch.cli import ops
from teledispatch.cli.main import EXIT_MISSING_EXTRA, main, parse


def test_flower_forwards_the_options_it_does_not_know() -> None:
    args = parse(["flower", "--url_prefix=flower", "--port", "5556", "--max_tasks", "9"])
    assert (args.verb, args.port) == ("flower", 5556)
    assert args.passthrough == ["--url_prefix=flower", "--max_tasks", "9"]
    assert ops.flower_argv(args.port, None, args.passthrough)[-3:] == [
        "--url_prefix=flower",
        "--max_tasks",
        "9",
    ]
    assert parse(["flower", "--", "--port", "7"]).passthrough == ["--port", "7"]
    assert parse(["flower"]).passthrough == []


def test_other_verbs_still_refuse_unknown_options(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        parse(["worker", "--url_prefix=flower"])
    assert exited.value.code == 2
    assert "unrecognized arguments: --url_prefix=flower" in capsys.readouterr().err


def test_a_missing_extra_is_one_line_naming_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real = importlib.util.find_spec

    def without_fastapi(name: str, *a: Any) -> Any:
        return None if name == "fastapi" else real(name, *a)

    monkeypatch.setattr(importlib.util, "find_spec", without_fastapi)
    assert main(["api", "--port", "1"]) == EXIT_MISSING_EXTRA
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "missing: fastapi" in err and "pip install 'teledispatch[server]'" in err
