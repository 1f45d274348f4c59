"""Celery beat schedule files never land untracked in a checkout.

A dev worker with a beat keeps its schedule beside its log, or in the user's state directory;
and the names beat schedules get are ignored by git wherever they appear.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from teledispatch.dev import processes

ROOT = Path(__file__).resolve().parents[3]


def _schedule_of(monkeypatch: pytest.MonkeyPatch, **kw: Any) -> Path:
    argvs: list[list[str]] = []
    monkeypatch.setattr(processes, "spawn", lambda name, argv, env, log: argvs.append(argv))
    processes.start_worker({}, beat=True, name="w", **kw)
    (argv,) = argvs
    return Path(argv[argv.index("--schedule") + 1])


def test_a_worker_without_a_log_keeps_its_schedule_in_the_state_dir(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.chdir(tmp_path)
    schedule = _schedule_of(monkeypatch)
    assert schedule == tmp_path / "state" / "teledispatch" / ".beat-w"
    assert schedule.parent.is_dir()
    assert schedule.resolve().parent != Path.cwd().resolve()


def test_a_worker_with_a_log_keeps_its_schedule_beside_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    assert _schedule_of(monkeypatch, log_path=tmp_path / "w.log") == tmp_path / ".beat-w"


@pytest.mark.skipif(
    shutil.which("git") is None or not (ROOT / ".git").exists(), reason="needs a git checkout"
)
@pytest.mark.parametrize(
    "name",
    [
        ".teledispatch-beat-schedule",  # the CLI's --schedule default
        ".teledispatch-beat-schedule.db",  # shelve's own suffixes
        ".teledispatch-beat-schedule.dir",
        "bench/.beat-td0",
        "celerybeat-schedule",
    ],
)
def test_beat_schedule_files_are_ignored_by_git(name: str) -> None:
    result = subprocess.run(
        ["git", "check-ignore", "--no-index", "-q", name], cwd=ROOT, timeout=10, check=False
    )
    assert result.returncode == 0, f"{name} is not ignored"
