"""One run's private world: redis-server, a fresh database, the simulator, workers, producer.

Every run gets its own of each, so no figure carries another run's state (a warm cache, a
backlog, a process's high-water mark). Everything started here is stopped on the way out.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import sqlalchemy as sa

from bench.measure import Deadline, parent_pid
from teledispatch.dev.processes import Proc, spawn, start_simulator, start_worker
from teledispatch.dev.redis import RedisService, start_redis_server
from teledispatch.wakeups import publisher

System = Literal["teledispatch", "baseline"]
Database = Literal["sqlite", "postgresql"]

PG_ADMIN_URL = os.environ.get(
    "BENCH_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
REPO = Path(__file__).resolve().parent.parent
TERMINAL = ("sent", "failed", "cancelled", "delivered", "undelivered")


class RunFailed(RuntimeError):
    """A run could not finish; the message says what was waited for and what was seen."""


@dataclass
class Stack:
    system: System
    database: Database
    workdir: Path
    database_url: str
    env: dict[str, str]
    sim_url: str
    procs: list[Proc] = field(default_factory=list)
    workers: list[Proc] = field(default_factory=list)
    redis_pid: int | None = None
    #: Finished rows that are not the run's (stored beforehand, e.g. for a purge to remove):
    #: the prefix of their job ids, which :meth:`progress` leaves out.
    foreign_jobs: str | None = None
    _engine: sa.Engine | None = None

    # --- processes -------------------------------------------------------------------------

    def start_workers(self, count: int, concurrency: int, timeout: float = 60.0) -> list[Proc]:
        for i in range(count):
            log = self.workdir / f"{self.system}-worker{i}.log"
            if self.system == "teledispatch":
                proc = start_worker(
                    self.env, concurrency=concurrency, beat=i == 0, name=f"td{i}", log_path=log
                )
            else:
                argv = [sys.executable, "-m", "celery", "-A", "bench.baseline", "worker"]
                argv += ["--concurrency", str(concurrency), "--loglevel", "WARNING"]
                argv += ["--queues", "baseline", "--hostname", f"bl{i}-{os.getpid()}@%h"]
                proc = spawn(f"bl{i}", argv, self.env, log)
            self.procs.append(proc)
            self.workers.append(proc)
        self._wait_workers_ready(count, timeout)
        return self.workers

    def _wait_workers_ready(self, count: int, timeout: float) -> None:
        control = publisher(self.env["REDIS_URL"]).control
        deadline = Deadline(timeout)
        while not deadline.expired:
            self.check_alive()
            if len(control.ping(timeout=0.5) or []) >= count:
                return
        raise RunFailed(f"{count} worker(s) did not answer ping within {timeout:.0f}s")

    def check_alive(self) -> None:
        for p in self.procs:
            finished_ok = p.name == "producer" and p.popen.returncode == 0
            if not p.alive() and not finished_ok:
                raise RunFailed(f"{p.name} exited:\n{p.tail()}")

    def start_producer(
        self,
        mode: str,
        n: int,
        rate: float | None = None,
        offset: int = 0,
        priority: str | None = None,
    ) -> Producer:
        out = self.workdir / f"produce-{uuid.uuid4().hex[:8]}.json"
        argv = [sys.executable, "-m", "bench.produce", self.system, mode, "--n", str(n)]
        argv += ["--out", str(out), "--offset", str(offset)]
        if rate is not None:
            argv += ["--rate", str(rate)]
        if priority is not None:
            argv += ["--priority", priority]
        proc = spawn("producer", argv, self.env, self.workdir / f"producer-{offset}.log")
        self.procs.append(proc)
        return Producer(proc, out)

    # --- the simulator and the database ----------------------------------------------------

    def sim_get(self, path: str) -> Any:
        with urllib.request.urlopen(self.sim_url + path, timeout=60) as resp:
            return json.load(resp)

    def sim_request_count(self) -> int:
        return int(self.sim_get("/_sim/health")["requests"])

    def postmaster_pid(self) -> int | None:
        """The PostgreSQL server process that serves this run's database (the parent of our
        own backend), so that its tree is exactly that server's backends; None for SQLite
        or a server on another machine. Other clients of the same server are counted too:
        the bench expects the server to itself while it runs."""
        if self.database != "postgresql":
            return None
        with self.engine.connect() as conn:
            backend = int(conn.execute(sa.text("SELECT pg_backend_pid()")).scalar_one())
        return parent_pid(backend)

    @property
    def engine(self) -> sa.Engine:
        if self._engine is None:
            self._engine = sa.create_engine(self.database_url)
        return self._engine

    def progress(self) -> tuple[int, float | None]:
        """(outcomes committed, time of the last one) in this system's own table."""
        if self.system == "teledispatch":
            sql = (
                "SELECT count(*), max(updated_at) FROM messages WHERE status IN "
                "(" + ", ".join(f"'{s}'" for s in TERMINAL) + ")"
            )
            if self.foreign_jobs is not None:
                prefix = self.foreign_jobs
                sql += f" AND substr(job_id, 1, {len(prefix)}) <> '{prefix}'"
        else:
            sql = "SELECT count(*), max(created_at) FROM baseline_outcomes"
        try:
            with self.engine.connect() as conn:
                row = conn.exec_driver_sql(sql).one()
        except (sa.exc.OperationalError, sa.exc.ProgrammingError):
            return 0, None  # the table does not exist yet (the first worker creates it)
        return int(row[0]), row[1]

    def _surely_unfinished(self) -> bool:
        """True if some message is still on its way: on PostgreSQL one row through a partial
        index, where counting the finished ones every poll read the whole table (at 1,000,000
        rows the bench's own polling was much of the server's CPU, slowing the run it
        measured; SQLite scans an index either way). The figures come from :meth:`progress`,
        read once this says the run may be done."""
        if self.system != "teledispatch":
            return False  # the baseline's outcome table holds finished messages only
        # Two probes, each matching a partial index's predicate (one IN list over both let
        # PostgreSQL scan a full index instead).
        sql = (
            "SELECT EXISTS (SELECT 1 FROM messages WHERE status IN "
            "('queued', 'deferred', 'unknown')) "
            "OR EXISTS (SELECT 1 FROM messages WHERE status = 'sending')"
        )
        try:
            with self.engine.connect() as conn:
                return bool(conn.exec_driver_sql(sql).scalar_one())
        except (sa.exc.OperationalError, sa.exc.ProgrammingError):
            return True  # the table does not exist yet

    def wait_outcomes(
        self, n: int, timeout: float, poll: float = 0.5, *, partial_ok: bool = False
    ) -> tuple[int, float]:
        """Block until ``n`` outcomes are committed; returns (how many, time of the last).

        With ``partial_ok`` a timeout returns what was committed so far instead of failing.
        """
        deadline = Deadline(timeout)
        done, last = 0, None
        while not deadline.expired:
            self.check_alive()
            if not self._surely_unfinished():
                done, last = self.progress()
                if done >= n and last is not None:
                    return done, float(last)
            time.sleep(poll)
        done, last = self.progress()
        if partial_ok and done and last is not None:
            return done, float(last)
        logs = "\n".join(f"--- {p.name}\n{p.tail(15)}" for p in self.workers)
        raise RunFailed(f"{done}/{n} outcomes after {timeout:.0f}s\n{logs}")


@dataclass
class Producer:
    proc: Proc
    out: Path

    def result(self, timeout: float) -> dict[str, Any]:
        try:
            code = self.proc.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.stop()
            raise RunFailed(f"producer did not finish within {timeout:.0f}s") from None
        if code != 0 or not self.out.exists():
            raise RunFailed(f"producer exited with {code}:\n{self.proc.tail()}")
        report: dict[str, Any] = json.loads(self.out.read_text())
        return report


def _create_pg_database() -> tuple[str, str]:
    name = f"bench_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            # What earlier runs left dirty (a 1,000,000-row job, a dropped database) is
            # written now, not by the checkpointer during this run's measurement.
            conn.exec_driver_sql("CHECKPOINT")
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    finally:
        admin.dispose()
    return name, f"{PG_ADMIN_URL.rsplit('/', 1)[0]}/{name}"


def _drop_pg_database(name: str) -> None:
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        admin.dispose()


def _configure(config: Path, account: Mapping[str, Any]) -> None:
    """Add settings to ``[accounts.nxcloud]`` of the simulator-written config."""
    if not account:
        return
    lines = [f"{k} = {json.dumps(v)}" for k, v in account.items()]
    text = config.read_text()
    header = "[accounts.nxcloud]\n"
    config.write_text(text.replace(header, header + "\n".join(lines) + "\n", 1))


@contextlib.contextmanager
def open_stack(
    system: System,
    database: Database,
    *,
    sim_options: Sequence[str] = (),
    account: Mapping[str, Any] | None = None,
) -> Iterator[Stack]:
    """A private redis-server, a fresh database and the simulator; torn down on exit."""
    workdir = Path(tempfile.mkdtemp(prefix=f"bench-{system}-"))
    redis: RedisService | None = None
    pg_name: str | None = None
    stack: Stack | None = None
    try:
        redis = start_redis_server()
        if database == "postgresql":
            pg_name, database_url = _create_pg_database()
        else:
            database_url = f"sqlite:///{workdir / 'bench.db'}"
        config = workdir / "teledispatch.toml"
        env = {
            "REDIS_URL": redis.url,
            "DATABASE_URL": database_url,
            "TELEDISPATCH_CONFIG": str(config),
            "BASELINE_DATABASE_URL": database_url,
            "BASELINE_CONFIG": str(config),
            "BASELINE_RATE_LIMIT": str((account or {}).get("baseline_rate_limit", "")),
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        }
        sim, sim_url = start_simulator(config, env, sim_options)
        stack = Stack(system, database, workdir, database_url, env, sim_url, [sim])
        stack.redis_pid = redis.process.pid if redis.process is not None else None
        _configure(config, {k: v for k, v in (account or {}).items() if k != "baseline_rate_limit"})
        if system == "baseline":
            from bench.baseline import make_engine, metadata

            engine = make_engine(database_url)
            metadata.create_all(engine)
            engine.dispose()
        yield stack
    finally:
        if stack is not None:
            for p in reversed(stack.procs):
                p.stop()
            if stack._engine is not None:
                stack._engine.dispose()
        if redis is not None:
            redis.stop()
        if pg_name is not None:
            _drop_pg_database(pg_name)
        shutil.rmtree(workdir, ignore_errors=True)
