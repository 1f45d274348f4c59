"""Running a door under atheris: by hand for long, or bounded from pytest.

``python -m tests.fuzz.<door> [libFuzzer flags]`` restarts as ``python -m tests.fuzz <door>``
(:mod:`tests.fuzz.__main__`), which fuzzes with the door's checked-in seeds and a throw-away
working corpus; pytest runs the same command in a subprocess with ``-runs`` and a time cap
(:func:`bounded_run`). Nothing a run writes lands in the tree unless a flag says so.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

SEEDS = Path(__file__).resolve().parent / "seeds"
ROOT = SEEDS.parents[2]


#: The doors, each a module here with a ``check(data: bytes) -> None``.
DOORS = ("responses", "receipts", "csv_rows", "phones", "config_tables")


def libfuzzer_args(door: str, argv: Sequence[str]) -> list[str]:
    """libFuzzer arguments with the door's seeds, dictionary and a temporary artifact folder
    added unless the caller chose their own."""
    args = list(argv)
    if not any(not a.startswith("-") for a in args):
        work = tempfile.mkdtemp(prefix=f"td-fuzz-{door}-")
        # The first folder receives what the run finds; the seeds are only read.
        args += [work, str(SEEDS / door)]
    if not any(a.startswith("-artifact_prefix=") for a in args):
        crashes = Path(tempfile.gettempdir()) / "td-fuzz-crashes" / door
        crashes.mkdir(parents=True, exist_ok=True)
        args.append(f"-artifact_prefix={crashes}/")
    dictionary = SEEDS / f"{door}.dict"
    if dictionary.exists() and not any(a.startswith("-dict=") for a in args):
        args.append(f"-dict={dictionary}")
    return args


def main(door: str) -> NoReturn:
    """``python -m tests.fuzz.<door> …``: the door module has already imported the project
    without coverage, so start again as ``python -m tests.fuzz <door> …``."""
    os.execv(sys.executable, [sys.executable, "-m", "tests.fuzz", door, *sys.argv[1:]])


def bounded_run(
    door: str, work: Path, *, runs: int, seconds: int
) -> subprocess.CompletedProcess[str]:
    """One reproducible run of ``door`` (fixed seed), at most ``runs`` inputs or ``seconds``."""
    crashes = work / "crashes"
    corpus = work / "corpus"
    crashes.mkdir()
    corpus.mkdir()
    command = [
        sys.executable, "-m", "tests.fuzz", door, str(corpus), str(SEEDS / door),
        f"-runs={runs}", f"-max_total_time={seconds}", "-seed=1", "-max_len=4096",
        f"-artifact_prefix={crashes}/", "-print_final_stats=1",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    # libFuzzer stops itself at -max_total_time; the margin covers start-up and instrumenting.
    return subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=seconds + 60
    )


#: The pytest budget per door: a regression net in CI, not a search (run long by hand).
CI_RUNS = 100_000
CI_SECONDS = 10


def assert_survives(door: str, work: Path) -> None:
    """Fail with libFuzzer's report (the exception and the input) if the run found a crash."""
    result = bounded_run(door, work, runs=CI_RUNS, seconds=CI_SECONDS)
    assert result.returncode == 0, result.stderr[-6000:]
