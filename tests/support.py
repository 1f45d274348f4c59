"""What tests import: helpers (settings, canned provider answers, polling) and the fixtures of
the real parts — a private redis-server, PostgreSQL and SQLite, the simulator and Celery workers
as subprocesses. A tier's conftest imports the fixtures it offers; everything is torn down after
the test that asked for it."""

from __future__ import annotations

import contextlib
import json
import os
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis as redis_lib
import sqlalchemy as sa

from teledispatch.channels.base import HttpRequest
from teledispatch.config import Settings, load_settings, parse_config
from teledispatch.db.engine import dispose_engines
from teledispatch.dev.processes import Proc, cli_argv, spawn, start_simulator, start_worker
from teledispatch.dev.redis import RedisService, free_port, redis_ping, start_redis_server
from teledispatch.producer.lookup import job_status
from teledispatch.worker.transport import HttpResponse


def nx_ok(request: HttpRequest) -> HttpResponse:
    """NXCloud's answer when every item is accepted."""
    body = json.loads(request.body)
    data = [
        {"phone": i["phone"], "messageid": i["sysMessageId"], "status": "Success", "message": ""}
        for i in body["items"]
    ]
    return HttpResponse(200, {}, json.dumps({"code": 0, "message": "ok", "data": data}).encode())


def make_settings(db_url: str, **account: Any) -> Settings:
    table = {
        "channel": "nxcloud.sms",
        "base_url": "http://nx.test",
        "access_key": "ak",
        "secret": "sk",
        "app_key": "app",
        "backoff_base_s": 0.01,
        "linger_ms": 0,
        **account,
    }
    accounts = parse_config({"accounts": {"nx": table}})
    return Settings(accounts=accounts, redis_url="redis://fake", database_url=db_url)


PG_ADMIN_URL = os.environ.get(
    "TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
RABBITMQ_URL = os.environ.get("TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672//")


@pytest.fixture(scope="session")
def redis_service() -> Iterator[RedisService]:
    try:
        service = start_redis_server()
    except FileNotFoundError:
        url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/15")
        if not redis_ping(url):
            pytest.skip("Redis: no redis-server on PATH and none reachable at REDIS_URL")
        service = RedisService(url, "existing")
    yield service
    service.stop()


def _pg_reachable() -> bool:
    try:
        engine = sa.create_engine(PG_ADMIN_URL, connect_args={"connect_timeout": 3})
        with engine.connect():
            pass
        engine.dispose()
        return True
    except Exception:
        return False


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'td.db'}"
        return
    if not _pg_reachable():
        pytest.skip(f"PostgreSQL not reachable at {PG_ADMIN_URL}")
    name = f"td_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    yield f"{base}/{name}"
    dispose_engines(close=True)
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.dispose()


@pytest.fixture
def broker(request: pytest.FixtureRequest) -> str | None:
    """The Celery broker URL, or None for Redis (``redis_service``, the default). A test runs
    on RabbitMQ with ``@pytest.mark.parametrize("broker", ["rabbitmq"], indirect=True)``."""
    which = getattr(request, "param", "redis")
    if which == "redis":
        return None
    from kombu.connection import Connection

    from teledispatch.channels.registry import CHANNEL_IDS
    from teledispatch.wakeups import MAINTENANCE_QUEUE, channel_queue

    try:
        with Connection(RABBITMQ_URL, connect_timeout=5) as conn:  # type: ignore[no-untyped-call]
            conn.ensure_connection(max_retries=1)
            # A previous run's wake-ups must not reach this test's worker.
            for queue in [MAINTENANCE_QUEUE, *(channel_queue(c) for c in CHANNEL_IDS)]:
                with contextlib.suppress(Exception):  # not declared yet: nothing to purge
                    conn.channel().queue_purge(queue)
    except Exception as exc:
        pytest.skip(f"RabbitMQ not reachable at {RABBITMQ_URL}: {type(exc).__name__}: {exc}")
    return RABBITMQ_URL


def due_job(url: str, n: int) -> sa.Engine:
    """The schema at ``url`` with one NXCloud job ``j`` of ``n`` messages, all due: the start
    of every test that claims and writes outcomes by hand."""
    from teledispatch.channels.registry import rules_for
    from teledispatch.db.engine import get_engine
    from teledispatch.db.migrate import ensure_schema
    from teledispatch.db.tables import jobs_table, messages_table
    from teledispatch.producer.submit import store_part

    ensure_schema(url)
    engine = get_engine(url)
    with engine.begin() as conn:
        conn.execute(
            jobs_table.insert().values(
                id="j", account="nx", channel="nxcloud.sms", total=n, content_hash="h", created_at=0
            )
        )
    part = [[i, {"phone": f"+86139{i:08d}", "content": "x"}] for i in range(n)]
    store_part(engine, "j", part, rules_for("nxcloud.sms"), None)
    with engine.begin() as conn:
        conn.execute(sa.update(messages_table).values(due_at=0))
    return engine


def plan_nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every node of a PostgreSQL ``EXPLAIN (FORMAT JSON)`` plan, depth first."""
    yield plan
    for child in plan.get("Plans", ()):
        yield from plan_nodes(child)


def poll(predicate: Callable[[], Any], timeout: float, what: str, every: float = 0.2) -> Any:
    """The first truthy value of ``predicate``, asked every ``every`` s for up to ``timeout``:
    for state that can only be observed from outside (another process's HTTP or database)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


@dataclass
class Stack:
    workdir: Path
    env: dict[str, str]
    cfg: Settings
    sim_url: str
    procs: list[Proc] = field(default_factory=list)

    def worker(self, *, concurrency: int = 4, beat: bool = False, name: str = "w") -> Proc:
        proc = start_worker(
            self.env,
            concurrency=concurrency,
            beat=beat,
            name=name,
            log_path=self.workdir / f"{name}.log",
        )
        self.procs.append(proc)
        return proc

    def beat(self) -> Proc:
        """The sweep schedule in its own process, so killing workers leaves it running."""
        schedule = self.workdir / ".beat-schedule"
        argv = cli_argv("beat", "--loglevel", "WARNING", "--schedule", str(schedule))
        proc = spawn("beat", argv, self.env, self.workdir / "beat.log")
        self.procs.append(proc)
        return proc

    def configure(self, account: str, **values: object) -> None:
        """Add settings to an account of the simulator-written config (before workers start)."""
        path = Path(self.env["TELEDISPATCH_CONFIG"])
        lines = path.read_text().splitlines()
        at = lines.index(f"[accounts.{account}]") + 1
        lines[at:at] = [f"{k} = {json.dumps(v)}" for k, v in values.items()]
        path.write_text("\n".join(lines) + "\n")
        self.cfg = load_settings(path)

    def sim_requests(self) -> list[dict[str, Any]]:
        with urllib.request.urlopen(self.sim_url + "/_sim/requests", timeout=30) as resp:
            data: list[dict[str, Any]] = json.load(resp)
        return data

    def api(
        self, *, extra_env: dict[str, str] | None = None, log_level: str = "warning"
    ) -> tuple[Proc, str]:
        """Start ``teledispatch api`` on a free port; returns it and its base URL once up."""
        port = free_port()
        proc = spawn(
            "api",
            cli_argv("api", "--port", str(port), "--log-level", log_level),
            {**self.env, **(extra_env or {})},
            self.workdir / "api.log",
        )
        self.procs.append(proc)
        base = f"http://127.0.0.1:{port}"

        def up() -> bool:
            assert proc.alive(), f"api exited:\n{proc.tail()}"
            try:
                with urllib.request.urlopen(base + "/livez", timeout=2) as resp:
                    return bool(resp.status == 200)
            except OSError:
                return False

        poll(up, 30, "the API's /livez")
        return proc, base

    def wait_done(self, job_ids: Sequence[str], timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(job_status(j, cfg=self.cfg).done for j in job_ids):
                return
            for p in self.procs:
                assert p.alive() or p.killed, f"{p.name} died:\n{p.tail()}"
            time.sleep(0.25)
        counts = [job_status(j, cfg=self.cfg).counts for j in job_ids[:5]]
        logs = "\n".join(f"--- {p.name}\n{p.tail()}" for p in self.procs)
        raise AssertionError(f"jobs not done in {timeout:.0f}s: {counts}\n{logs}")


@pytest.fixture
def make_stack(
    redis_service: RedisService,
    database_url: str,
    broker: str | None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Callable[..., Stack]]:
    """``make_stack(sim_options=[...])`` starts the simulator and returns the stack."""
    redis_lib.Redis.from_url(redis_service.url).flushdb()
    stacks: list[Stack] = []

    def make(sim_options: Sequence[str] = ()) -> Stack:
        config = tmp_path / "teledispatch.toml"
        env = {
            "REDIS_URL": redis_service.url,
            "DATABASE_URL": database_url,
            "TELEDISPATCH_CONFIG": str(config),
            "TELEDISPATCH_SWEEP_S": "0.5",
        }
        if broker is not None:
            env["CELERY_BROKER_URL"] = broker
        else:
            monkeypatch.delenv("CELERY_BROKER_URL", raising=False)
        sim, url = start_simulator(config, env, sim_options)
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        stack = Stack(tmp_path, env, load_settings(config), url, [sim])
        stacks.append(stack)
        return stack

    yield make
    for stack in stacks:
        for p in reversed(stack.procs):
            p.stop()
    dispose_engines(close=True)
