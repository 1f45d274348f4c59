"""Starting the real pieces as local processes: the simulator and Celery workers.

Used by ``teledispatch demo``, the integration tests and the benchmarks, so all three run the
same processes the same way. Every wait is bounded and names what it waited for.
"""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

LISTENING = "simulator listening on "


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path | None = None
    lines: list[str] = field(default_factory=list)
    #: Set by :meth:`kill`: its death was intended.
    killed: bool = False

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM (Celery's warm shutdown), then SIGKILL the group if it lingers."""
        if self.popen.poll() is not None:
            return
        try:
            os.killpg(self.popen.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        """SIGKILL the process and its children (a worker's pool) at once: a crash."""
        self.killed = True
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        self.popen.wait(timeout=15)

    def tail(self, n: int = 40) -> str:
        if self.log_path and self.log_path.exists():
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        return "\n".join(self.lines[-n:])


def cli_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "teledispatch.cli.main", *args]


def spawn(
    name: str, argv: Sequence[str], env: Mapping[str, str], log_path: Path | None = None
) -> Proc:
    out: int | IO[bytes] = subprocess.DEVNULL
    if log_path is not None:
        out = log_path.open("ab")
    try:
        popen = subprocess.Popen(
            list(argv),
            env={**os.environ, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stop()/kill() reach its children
        )
    finally:
        # The child has its own descriptor of the log; ours would only leak.
        if not isinstance(out, int):
            out.close()
    return Proc(name, popen, log_path)


def start_simulator(
    config_path: Path, env: Mapping[str, str], options: Sequence[str] = (), timeout: float = 30.0
) -> tuple[Proc, str]:
    """Start ``teledispatch simulate`` on a free port; returns it and its base URL."""
    argv = cli_argv("simulate", "--port", "0", "--write-config", str(config_path), *options)
    popen = subprocess.Popen(
        argv,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    proc = Proc("simulator", popen)
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert popen.stdout is not None
        with popen.stdout:  # closed at the simulator's exit, not left to the collector
            for raw in popen.stdout:
                lines.put(raw.decode(errors="replace").rstrip())
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    while True:
        try:
            line = lines.get(timeout=timeout)
        except queue.Empty:
            proc.kill()
            raise TimeoutError(f"simulator did not report its port within {timeout:.0f}s") from None
        if line is None:
            raise RuntimeError("simulator exited before listening:\n" + "\n".join(proc.lines))
        proc.lines.append(line)
        if line.startswith(LISTENING):
            return proc, line[len(LISTENING) :].strip()


def start_worker(
    env: Mapping[str, str],
    *,
    concurrency: int = 4,
    beat: bool = False,
    name: str = "worker",
    log_path: Path | None = None,
    queues: str | None = None,
) -> Proc:
    args = ["worker", "--concurrency", str(concurrency), "--loglevel", "WARNING"]
    args += ["--hostname", f"{name}-{os.getpid()}@%h"]
    if beat:
        schedule = (log_path.parent if log_path else beat_state_dir()) / f".beat-{name}"
        args += ["--beat", "--schedule", str(schedule)]
    if queues:
        args += ["--queues", queues]
    return spawn(name, cli_argv(*args), env, log_path)


def beat_state_dir() -> Path:
    """Where a beat schedule goes when there is no log folder to put it beside: the user's
    state directory (XDG), never the working directory, which is often a checkout."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    path = Path(base) / "teledispatch"
    path.mkdir(parents=True, exist_ok=True)
    return path
