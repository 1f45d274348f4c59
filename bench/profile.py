"""``python -m bench.profile``: where a teledispatch message's time goes, in-process.

Starts a private stack (redis-server, a fresh database, the simulator; no Celery worker), then
under cProfile: ``enqueue_stream`` of one N-recipient job and of ``--singles`` one-recipient
jobs (the producer), and
``worker.dispatch.dispatch`` called in a loop until nothing is left (the worker's hot path, one
process). Wall time of each dispatch step is timed separately by wrapping the step functions in
this process only (nothing in the product is changed), because much of a message's time is
waiting on the database or the provider, which cProfile's CPU view hides.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import os
import pstats
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from typing import Any

from bench.stack import Database, open_stack

#: (label, substring of the function's file path) — first match wins.
BUCKETS = [
    ("sqlalchemy", "/sqlalchemy/"),
    ("psycopg / sqlite3 driver", "/psycopg"),
    ("psycopg / sqlite3 driver", "sqlite3"),
    ("httpx / httpcore / h11", "/httpx/"),
    ("httpx / httpcore / h11", "/httpcore/"),
    ("httpx / httpcore / h11", "/h11/"),
    ("redis client", "/redis/"),
    ("phonenumbers", "/phonenumbers/"),
    ("pydantic", "/pydantic"),
    ("json", "/json/"),
    ("socket / ssl / selectors", "socket.py"),
    ("socket / ssl / selectors", "selectors.py"),
    ("teledispatch worker", "/worker/"),
    ("teledispatch producer", "/producer/"),
    ("celery / kombu", "/kombu/"),
    ("celery / kombu", "/celery/"),
]


def _bucket(filename: str) -> str:
    for label, needle in BUCKETS:
        if needle in filename:
            return label
    if filename.startswith("~") or filename == "":
        return "builtins (C)"
    return "other python"


def cpu_by_bucket(stats: pstats.Stats) -> dict[str, float]:
    """Self time (tottime) per library, seconds."""
    out: dict[str, float] = defaultdict(float)
    for (filename, _line, _name), row in stats.stats.items():  # type: ignore[attr-defined]
        out[_bucket(filename)] += row[2]
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


def top(stats: pstats.Stats, n: int, sort: str) -> str:
    buf = io.StringIO()
    stats.stream = buf  # type: ignore[attr-defined]
    stats.sort_stats(sort).print_stats(n)
    return "\n".join(line for line in buf.getvalue().splitlines() if line.strip())


class GcTimer:
    """Collections per generation and the time spent in them, from ``gc.callbacks``: cProfile
    bills a collection to whichever call happened to allocate, which hides it."""

    def __init__(self) -> None:
        self.seconds = [0.0, 0.0, 0.0]
        self.collections = [0, 0, 0]
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.seconds[info["generation"]] += time.perf_counter() - self._started
            self.collections[info["generation"]] += 1


class StepTimer:
    """Wall time per wrapped function, summed over calls."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self._undo: list[Callable[[], None]] = []

    def wrap(self, owner: Any, attr: str, label: str) -> None:
        original = getattr(owner, attr)

        def timed(*args: Any, **kwargs: Any) -> Any:
            t = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.seconds[label] += time.perf_counter() - t
                self.calls[label] += 1

        setattr(owner, attr, timed)
        self._undo.append(lambda: setattr(owner, attr, original))

    def restore(self) -> None:
        for undo in reversed(self._undo):
            undo()


def _rows(n: int) -> Iterator[dict[str, Any]]:
    for i in range(n):
        yield {"phone": f"+86139{i:08d}"}


def _report(title: str, prof: cProfile.Profile, n: int, wall: float, top_n: int) -> None:
    stats = pstats.Stats(prof)
    total_cpu = sum(row[2] for row in stats.stats.values())  # type: ignore[attr-defined]
    print(f"\n=== {title}: {n:,} messages, wall {wall:.2f}s = {wall / n * 1e6:.0f} µs/message")
    print(
        f"profiled time {total_cpu:.2f}s = {total_cpu / n * 1e6:.0f} µs/message "
        "(cProfile's clock is wall time: blocking waits count); self time by library:"
    )
    for label, secs in cpu_by_bucket(stats).items():
        if secs >= 0.005 * total_cpu:
            share = secs / total_cpu * 100
            print(f"  {label:<28}{secs:7.2f}s {secs / n * 1e6:7.1f} µs/msg {share:5.1f}%")
    print(f"\ntop {top_n} by self time:")
    print(top(stats, top_n, "tottime"))
    print(f"\ntop {top_n} by cumulative time:")
    print(top(stats, top_n, "cumulative"))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.profile")
    p.add_argument("--n", type=int, default=20_000)
    p.add_argument("--db", choices=["sqlite", "postgresql"], default="postgresql")
    p.add_argument("--top", type=int, default=20)
    p.add_argument(
        "--singles", type=int, default=500, help="single-recipient jobs to profile (0: none)"
    )
    args = p.parse_args(argv)
    database: Database = args.db
    with open_stack("teledispatch", database) as stack:
        os.environ.update(stack.env)
        from teledispatch.channels.nxcloud.adapter import NxcloudAdapter
        from teledispatch.config import settings
        from teledispatch.db import messages as repo
        from teledispatch.producer.submit import enqueue_stream
        from teledispatch.worker import dispatch as dispatch_module
        from teledispatch.worker.context import build

        cfg = settings()
        prof = cProfile.Profile()
        t = time.perf_counter()
        prof.enable()
        enqueue_stream("nxcloud", _rows(args.n), defaults={"content": "Your order has shipped."})
        prof.disable()
        _report("producer: enqueue_stream", prof, args.n, time.perf_counter() - t, args.top)

        if args.singles:
            prof = cProfile.Profile()
            t = time.perf_counter()
            prof.enable()
            for i in range(args.singles):
                enqueue_stream("nxcloud", [{"phone": f"+86138{i:08d}", "content": f"Code {i}"}])
            prof.disable()
            wall = time.perf_counter() - t
            _report("producer: single-recipient jobs", prof, args.singles, wall, args.top)

        ctx = build(lambda *_: None, cfg)
        steps = StepTimer()
        steps.wrap(repo, "claim", "claim (UPDATE … RETURNING)")
        steps.wrap(repo, "apply", "apply outcomes (UPDATE … FROM per batch)")
        if hasattr(repo, "mark_departing"):
            steps.wrap(repo, "mark_departing", "mark departing (batch row CAS)")
        steps.wrap(NxcloudAdapter, "build_request", "build + sign request")
        steps.wrap(NxcloudAdapter, "parse_response", "parse response")
        steps.wrap(type(ctx.transport), "send", "HTTP round trip (simulator)")
        prof = cProfile.Profile()
        gc_timer = GcTimer()
        gc.callbacks.append(gc_timer)
        sent = 0
        t, cpu = time.perf_counter(), time.process_time()
        deadline = time.monotonic() + 600
        try:
            prof.enable()
            while time.monotonic() < deadline:
                report = dispatch_module.dispatch(ctx, "nxcloud")
                if not report.claimed:
                    break
                sent += report.claimed
            prof.disable()
        finally:
            steps.restore()
            gc.callbacks.remove(gc_timer)
        wall, cpu = time.perf_counter() - t, time.process_time() - cpu
        _report("worker: dispatch loop, one process", prof, max(sent, 1), wall, args.top)
        print(
            f"\nthis process's own CPU (process_time): {cpu:.2f}s = "
            f"{cpu / max(sent, 1) * 1e6:.0f} µs/message; the rest of the wall time is waiting "
            "(database server, simulator)"
        )
        gc_s = sum(gc_timer.seconds)
        print(
            f"garbage collections (gen 0/1/2): {'/'.join(map(str, gc_timer.collections))} "
            f"taking {'/'.join(f'{s:.3f}' for s in gc_timer.seconds)}s, "
            f"{gc_s / max(sent, 1) * 1e6:.1f} µs/message (billed by cProfile to whatever "
            "allocated)"
        )
        print("\nwall time per step (one process, cProfile on, so CPU steps are inflated):")
        for label, secs in sorted(steps.seconds.items(), key=lambda kv: -kv[1]):
            per_msg = secs / max(sent, 1) * 1e6
            print(f"  {label:<40}{secs:7.2f}s {per_msg:7.1f} µs/msg  {steps.calls[label]} calls")
        ctx.transport.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
