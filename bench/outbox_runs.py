"""The runs of issue #16, each selectable on its own (``--only export``, ``webhooks``,
``purge``) and not part of a plain ``python -m bench``:

- ``export``: ``teledispatch export`` of a finished job of 100,000 and of 1,000,000
  recipients (PostgreSQL); peak RSS of each export process (``wait4``), and their ratio:
  flat memory means about 1.
- ``webhooks``: the system-bound PostgreSQL run twice, without and with a webhook on every
  job (the account's ``callback_url``, a local receiver in this process); messages/s with
  over without, and events delivered per second.
- ``purge``: a 100,000-recipient job beside 1,000,000 finished rows of old jobs, without
  and then with ``teledispatch db purge`` removing them; its messages/s with over without
  (and, for reference, the same job in an empty database).
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from bench.measure import MemorySampler
from bench.runs import Shape, _guarded, _measure
from bench.stack import RunFailed, Stack, _create_pg_database, _drop_pg_database, open_stack
from teledispatch.dev.processes import cli_argv

#: Rows per COPY when a finished job is stored for ``export`` and ``purge``.
CHUNK = 50_000
SECRET = "whsec-bench"


def store_finished_job(url: str, job_id: str, n: int, created_at: float = 0.0) -> None:
    """A job of ``n`` recipients, every one ``sent``, written by COPY (not dispatched)."""
    from teledispatch.db import jobs as jobs_db
    from teledispatch.db import messages as messages_db
    from teledispatch.db.migrate import ensure_schema

    ensure_schema(url)
    engine = sa.create_engine(url)
    try:
        job = {"id": job_id, "account": "nxcloud", "channel": "nxcloud.sms", "total": n}
        job |= {"parts": 1, "content_hash": job_id, "created_at": created_at}
        with engine.begin() as conn:
            jobs_db.insert_jobs(conn, [job])
        for start in range(0, n, CHUNK):
            rows = [
                {
                    "id": f"{job_id}-{i}",
                    "job_id": job_id,
                    "seq": i,
                    "account": "nxcloud",
                    "channel": "nxcloud.sms",
                    "phone": f"+86139{i % 100_000_000:08d}",
                    "group_key": "",
                    "payload": json.dumps({"content": "Your order has shipped.", "ext": str(i)}),
                    "status": "sent",
                    "priority": 1,
                    "attempts": 1,
                    "provider_id": f"nx-{job_id}-{i}",
                    "due_at": created_at,
                    "created_at": created_at,
                    "updated_at": created_at + 1,
                    "sent_at": created_at + 1,
                    "encoding": "gsm7",
                    "segments": 1,
                }
                for i in range(start, min(n, start + CHUNK))
            ]
            with engine.begin() as conn:
                messages_db.insert_messages(conn, rows, fresh=True)
        # As autovacuum would after a bulk load: with the statistics of an empty table the
        # planner sorted the whole job for every export page.
        with engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE messages")
    finally:
        engine.dispose()


def _export_peak(url: str, job_id: str) -> dict[str, Any]:
    """Time and peak RSS of one export process. The peak is the process's own ``VmHWM``
    (sampled until it exits): ``wait4``'s ``ru_maxrss`` carries over the high-water mark
    of the parent it was forked from, here the bench holding a part it just stored."""
    env = {**os.environ, "DATABASE_URL": url}
    env.pop("TELEDISPATCH_CONFIG", None)
    started = time.monotonic()
    argv = cli_argv("export", job_id, "--format", "csv")
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL)
    with MemorySampler([proc.pid], interval=0.05) as mem:
        code = proc.wait(timeout=3600)
        peak = mem.process_peak_mb(proc.pid)
    if code != 0:
        raise RunFailed(f"export exited with {code}")
    return {"seconds": time.monotonic() - started, "peak_rss_mb": peak}


def export_memory(sizes: tuple[int, int]) -> dict[str, Any]:
    """Peak RSS of ``teledispatch export`` for a small and a big finished job."""

    def run() -> dict[str, Any]:
        name, url = _create_pg_database()
        try:
            out: dict[str, Any] = {}
            for n in sizes:
                store_finished_job(url, f"x{n}", n)
                figures = _export_peak(url, f"x{n}")
                figures["rows_per_s"] = n / figures["seconds"]
                out[str(n)] = figures
            small, big = (out[str(n)]["peak_rss_mb"] for n in sizes)
            return {"sizes": out, "rss_ratio": big / small, "n": sizes[1]}
        finally:
            _drop_pg_database(name)

    return _guarded("teledispatch", run)


class Receiver:
    """A local webhook receiver: answers 200, counts distinct events and when they came."""

    def __init__(self) -> None:
        self.ids: set[str] = set()
        self.first: float | None = None
        self.last: float | None = None
        lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                events = json.loads(body)["events"]
                now = time.monotonic()
                with lock:
                    outer.first = outer.first or now
                    outer.last = now
                    outer.ids.update(e["id"] for e in events)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _hooked(stack: Stack, url: str) -> None:
    """Every job of the account reports to ``url`` (the account's default callback)."""
    path = Path(stack.env["TELEDISPATCH_CONFIG"])
    text = path.read_text()
    header = "[accounts.nxcloud]\n"
    account = f'callback_url = "{url}"\ncallback_secret = "{SECRET}"\n'
    hooks = "\n[webhooks]\nallow_http = true\nallow_private_networks = true\n"
    path.write_text(text.replace(header, header + account, 1) + hooks)


def _plain(n: int, shape: Shape) -> dict[str, Any]:
    with open_stack("teledispatch", "postgresql", account={"linger_ms": shape.linger_ms}) as st:
        return _measure(st, shape, "bulk", n)


def webhooks(n: int, shape: Shape) -> dict[str, Any]:
    """System-bound PostgreSQL without and with a webhook on every job."""

    def run() -> dict[str, Any]:
        without = _plain(n, shape)
        receiver = Receiver()
        try:
            account = {"linger_ms": shape.linger_ms}
            with open_stack("teledispatch", "postgresql", account=account) as st:
                _hooked(st, receiver.url)
                hooked = _measure(st, shape, "bulk", n)
                deadline = time.monotonic() + 300
                while len(receiver.ids) < n + 1 and time.monotonic() < deadline:
                    time.sleep(0.5)  # bounded: the events still in the outbox
        finally:
            receiver.close()
        events = len(receiver.ids)
        span = (receiver.last or 0.0) - (receiver.first or 0.0)
        return {
            "n": n,
            "without": without,
            "with": hooked,
            "ratio_pct": 100 * hooked["messages_per_s"] / without["messages_per_s"],
            "events_delivered": events,
            "events_per_s": events / span if span > 0 else float("nan"),
        }

    return _guarded("teledispatch", run)


def _beside_old_jobs(n: int, purge_rows: int, shape: Shape, purge: bool) -> dict[str, Any]:
    """A job of ``n`` in a database that already holds ``purge_rows`` finished rows of old
    jobs, with ``db purge`` removing them meanwhile if ``purge``."""
    account = {"linger_ms": shape.linger_ms}
    with open_stack("teledispatch", "postgresql", account=account) as st:
        per_job = 100_000
        for k in range(0, purge_rows, per_job):
            store_finished_job(st.database_url, f"old{k // per_job}", min(per_job, purge_rows - k))
        st.foreign_jobs = "old"  # finished rows that are not the run's
        if not purge:
            return _measure(st, shape, "bulk", n)
        argv = cli_argv("db", "purge", "--older-than", "30d")
        started = time.monotonic()
        proc = subprocess.Popen(argv, env={**os.environ, **st.env}, stdout=subprocess.PIPE)
        during = _measure(st, shape, "bulk", n)
        overlapped = proc.poll() is None
        out, _ = proc.communicate(timeout=1800)
        purge_s = time.monotonic() - started
    return during | {
        "purge_s": purge_s,
        "purge_outlived_the_run": overlapped,
        "purge_said": out.decode().strip(),
    }


def purge_during_run(n: int, purge_rows: int, shape: Shape) -> dict[str, Any]:
    """A job of ``n`` beside ``purge_rows`` finished rows of old jobs, without and then with
    ``db purge`` removing them: the purge's own cost. The same job in an empty database is
    reported beside them (what a history of finished rows costs a run by itself)."""

    def run() -> dict[str, Any]:
        empty = _plain(n, shape)
        without = _beside_old_jobs(n, purge_rows, shape, purge=False)
        during = _beside_old_jobs(n, purge_rows, shape, purge=True)
        purge_s = during.pop("purge_s")
        return {
            "n": n,
            "empty": empty,
            "without": without,
            "with": during,
            "ratio_pct": 100 * during["messages_per_s"] / without["messages_per_s"],
            "purged_rows": purge_rows,
            "purge_s": purge_s,
            "purge_rows_per_s": purge_rows / purge_s,
            "purge_outlived_the_run": during.pop("purge_outlived_the_run"),
            "purge_said": during.pop("purge_said"),
        }

    return _guarded("teledispatch", run)


def text(name: str, run: dict[str, Any]) -> str:
    """One run's section of the printed report."""
    if "error" in run:
        return f"== {name} ==\n  FAILED: {run['error'].splitlines()[0]}"
    if name == "export":
        lines = ["== export: peak RSS of `teledispatch export` (postgresql) =="]
        for n, f in run["sizes"].items():
            lines.append(
                f"  {int(n):>9,} rows  {f['peak_rss_mb']:7.1f} MB  {f['seconds']:6.1f} s"
                f"  {f['rows_per_s']:9,.0f} rows/s"
            )
        lines.append(f"  ratio big/small: {run['rss_ratio']:.2f}")
        return "\n".join(lines)
    w, wo = run["with"], run["without"]
    label = "webhook on every job" if name == "webhooks" else "db purge running"
    lines = [
        f"== {name}: {run['n']:,} recipients, postgresql, without / with {label} ==",
        f"  messages/s  {wo['messages_per_s']:9,.0f} / {w['messages_per_s']:9,.0f}"
        f"  ({run['ratio_pct']:.0f} %)",
    ]
    if name == "webhooks":
        lines.append(
            f"  events delivered {run['events_delivered']:,} at {run['events_per_s']:,.0f}/s"
        )
    else:
        lines.append(
            f"  beside {run['purged_rows']:,} finished rows, without a purge; in an empty "
            f"database: {run['empty']['messages_per_s']:,.0f}"
        )
        lines.append(
            f"  purged {run['purged_rows']:,} rows in {run['purge_s']:.0f} s "
            f"({run['purge_rows_per_s']:,.0f}/s; outlived the run: {run['purge_outlived_the_run']})"
        )
    return "\n".join(lines)


__all__ = ["export_memory", "purge_during_run", "store_finished_job", "text", "webhooks"]
