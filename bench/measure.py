"""Process-tree accounting from /proc (no psutil): CPU seconds, RSS, peak RSS.

A Celery worker is a process tree (the main process, its pool children, beat with ``-B``), so
every figure here is taken over the tree rooted at the pid we started. CPU of children that
exited and were reaped is still counted through the root's ``cutime``/``cstime``.
"""

from __future__ import annotations

import bisect
import math
import os
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024


def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # The command name may contain spaces and parentheses: split after the last ')'.
    return text[text.rindex(")") + 2 :].split()


def children_map() -> dict[int, list[int]]:
    """ppid -> [pid] for every process visible in /proc."""
    out: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        if fields is not None:
            out.setdefault(int(fields[1]), []).append(int(entry.name))
    return out


def tree(root: int) -> list[int]:
    """``root`` and all its descendants that are alive now."""
    kids = children_map()
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(kids.get(pid, ()))
    return found


def cpu_seconds(pid: int, *, with_reaped_children: bool = False) -> float:
    """user+system CPU of one process (plus its reaped children's if asked)."""
    fields = _stat_fields(pid)
    if fields is None:
        return 0.0
    # After the ')' split: state=0, ppid=1 … utime=11, stime=12, cutime=13, cstime=14.
    ticks = int(fields[11]) + int(fields[12])
    if with_reaped_children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / CLK_TCK


def status_kb(pid: int, key: str) -> int:
    """A ``/proc/<pid>/status`` field in kB (``VmRSS``, ``VmHWM``); 0 if gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


@dataclass
class TreeSnapshot:
    """CPU per pid of a tree at one moment (the root includes its reaped children)."""

    root: int
    cpu: dict[int, float]

    @classmethod
    def take(cls, root: int) -> TreeSnapshot:
        cpu = {pid: cpu_seconds(pid, with_reaped_children=pid == root) for pid in tree(root)}
        return cls(root, cpu)

    def cpu_since(self, earlier: TreeSnapshot) -> float:
        """The tree's CPU in between. Totals, not per-pid differences: a process that ended in
        between moved its CPU into the root's ``cutime``, and subtracting its earlier figure
        keeps that from counting twice (PostgreSQL ends a backend per connection)."""
        return sum(self.cpu.values()) - sum(earlier.cpu.values())


def parent_pid(pid: int) -> int | None:
    """``pid``'s parent, or None if ``pid`` is not a process of this machine."""
    fields = _stat_fields(pid)
    return int(fields[1]) if fields is not None else None


@dataclass
class _Peak:
    tree_rss_kb: int = 0
    process_hwm_kb: dict[int, int] = field(default_factory=dict)


class MemorySampler:
    """Polls the trees of ``roots`` in a thread: peak of the summed RSS, and each process's
    own high-water mark (``VmHWM``, exact: the kernel keeps it, no sample can miss a peak)."""

    def __init__(self, roots: Iterable[int], interval: float = 0.25) -> None:
        self.roots = list(roots)
        self.interval = interval
        self._peaks = {root: _Peak() for root in self.roots}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="mem-sampler")

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def stop(self) -> None:
        if not self._stop.is_set():
            self._sample()
            self._stop.set()
            self._thread.join(timeout=5)

    def _sample(self) -> None:
        for root in self.roots:
            peak = self._peaks[root]
            pids = tree(root)
            total = 0
            for pid in pids:
                total += status_kb(pid, "VmRSS")
                hwm = status_kb(pid, "VmHWM")
                peak.process_hwm_kb[pid] = max(peak.process_hwm_kb.get(pid, 0), hwm)
            peak.tree_rss_kb = max(peak.tree_rss_kb, total)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def tree_peak_mb(self, root: int) -> float:
        return self._peaks[root].tree_rss_kb / 1024

    def process_peak_mb(self, root: int) -> float:
        """The largest single process's peak RSS in the tree."""
        return max(self._peaks[root].process_hwm_kb.values(), default=0) / 1024


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100); NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(p / 100 * len(ordered))))
    return ordered[rank - 1]


def window_counts(times: Sequence[float], window: float = 1.0) -> list[int]:
    """For each event, how many events fall in ``[t, t + window)``: every sliding window that
    could hold a maximum starts at an event, so these cover them all."""
    ordered = sorted(times)
    return [bisect.bisect_left(ordered, t + window) - i for i, t in enumerate(ordered)]


class Deadline:
    """A bounded wait: ``left()`` seconds remain, ``expired`` once past."""

    def __init__(self, seconds: float) -> None:
        self.end = time.monotonic() + seconds
        self.seconds = seconds

    @property
    def expired(self) -> bool:
        return time.monotonic() >= self.end

    def left(self) -> float:
        return max(0.0, self.end - time.monotonic())
