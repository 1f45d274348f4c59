"""The quick verbs run with the garbage collector paused, never for long and never for good."""

from __future__ import annotations

import gc
import threading
from collections.abc import Callable, Iterator
from typing import ClassVar

import pytest

from teledispatch.cli import main as cli_main


@pytest.fixture(autouse=True)
def _collector_on() -> Iterator[None]:
    gc.enable()
    yield
    gc.enable()


def test_paused_inside_and_back_on_after() -> None:
    with cli_main.collector_paused():
        assert not gc.isenabled()
    assert gc.isenabled()


def test_back_on_after_an_error() -> None:
    with pytest.raises(RuntimeError), cli_main.collector_paused():
        raise RuntimeError("boom")
    assert gc.isenabled()


class _Timer:
    """``threading.Timer`` that fires when told to."""

    made: ClassVar[list[_Timer]] = []

    def __init__(self, interval: float, function: Callable[[], None]) -> None:
        self.interval, self.function, self.cancelled = interval, function, False
        _Timer.made.append(self)

    def start(self) -> None:
        pass

    def cancel(self) -> None:
        self.cancelled = True


def test_back_on_once_the_pause_is_over(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(threading, "Timer", _Timer)
    _Timer.made.clear()
    with cli_main.collector_paused():
        (timer,) = _Timer.made
        assert timer.interval == cli_main.GC_PAUSE_MAX_S
        timer.function()  # the pause is over while the verb still runs
        assert gc.isenabled()
    assert timer.cancelled and gc.isenabled()


def test_a_callers_choice_is_kept() -> None:
    gc.disable()
    with cli_main.collector_paused():
        assert not gc.isenabled()
    assert not gc.isenabled()


def test_other_verbs_run_with_the_collector_as_it_was(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[bool] = []

    def fake_parse(argv: list[str]) -> object:
        seen.append(gc.isenabled())
        raise SystemExit(0)

    monkeypatch.setattr(cli_main, "parse", fake_parse)
    for verb in ("worker", "status"):
        with pytest.raises(SystemExit):
            cli_main.main([verb])
    assert seen == [True, False]
    assert gc.isenabled()
