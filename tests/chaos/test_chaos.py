"""Nothing lost, nothing sent twice, while the parts around the database fail.

Each run sends 20,000 recipients through real workers and the simulator while something
breaks, then checks the two promises on what the *provider* saw: every recipient ends in
exactly one terminal state, and no ``sysMessageId`` was accepted more than once.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator

import pytest
import redis as redis_lib
import sqlalchemy as sa

from teledispatch.db.engine import get_engine
from teledispatch.db.tables import messages_table
from teledispatch.dev.redis import RedisService, redis_ping, start_redis_server
from teledispatch.producer.submit import enqueue_stream
from teledispatch.wakeups import channel_queue, dispatch_task, publisher
from tests.support import Stack

pytestmark = pytest.mark.integration

N = 20_000
TERMINAL = {"sent", "failed", "cancelled"}


def bulk(stack: Stack, n: int = N) -> str:
    return enqueue_stream(
        "nxcloud",
        ({"phone": f"+86139{i:08d}"} for i in range(n)),
        defaults={"content": "chaos"},
        cfg=stack.cfg,
    ).job_id


def check_invariants(stack: Stack, job_id: str, n: int = N) -> Counter[str]:
    m = messages_table.c
    with get_engine(stack.cfg.database_url).connect() as conn:
        rows = conn.execute(sa.select(m.id, m.status, m.error_code).where(m.job_id == job_id))
        statuses: Counter[str] = Counter()
        for row in rows:
            final_unknown = row.status == "unknown" and row.error_code == "unreconciled"
            assert row.status in TERMINAL or final_unknown, (row.id, row.status)
            statuses[row.status] += 1
    assert sum(statuses.values()) == n
    sends = [r for r in stack.sim_requests() if r["channel"] == "nxcloud.sms"]
    accepted = Counter(i for r in sends for i in r["accepted"])
    twice = [i for i, c in accepted.items() if c > 1]
    assert not twice, f"{len(twice)} messages accepted twice, e.g. {twice[:3]}"
    assert statuses["sent"] == len(accepted)
    return statuses


@pytest.fixture
def repeat(stop: threading.Event) -> Iterator[Callable[..., None]]:
    threads: list[threading.Thread] = []

    def start(action: Callable[[], None], every: float, first: float | None = None) -> None:
        def loop() -> None:
            wait = every if first is None else first
            while not stop.wait(wait):
                action()
                wait = every

        thread = threading.Thread(target=loop, daemon=True)
        thread.start()
        threads.append(thread)

    yield start
    stop.set()
    for t in threads:
        t.join(timeout=30)


@pytest.fixture
def stop() -> threading.Event:
    return threading.Event()


@pytest.mark.chaos  # about a minute per database: run by `make chaos` (and CI), not `make test`
def test_workers_killed_every_few_seconds(
    make_stack: Callable[..., Stack],
    repeat: Callable[..., None],
    stop: threading.Event,
) -> None:
    stack = make_stack(["--latency-ms", "20", "--seed", "4"])
    # Short leases: a lost batch is back in 13 s. Batches of 20: 1,000 requests keep the job
    # in flight for seconds, so that the killer finds batches to strand (at 200 per request
    # eight processes could finish it before the first kill).
    stack.configure("nxcloud", timeout_s=3, max_batch=20)
    stack.beat()
    workers = [stack.worker(concurrency=4, name="w0"), stack.worker(concurrency=4, name="w1")]
    kills = Counter[str]()
    engine = get_engine(stack.cfg.database_url)
    m = messages_table.c

    def crash_when_busy() -> None:
        """kill -9 both workers while batches are in flight (so some are stranded), then
        start two fresh ones; at most every few seconds."""
        try:
            with engine.connect() as conn:
                query = sa.select(m.id).where(m.status == "sending").limit(1)
                busy = conn.execute(query).first()
        except sa.exc.DBAPIError:
            return  # no schema yet: nothing to strand
        if busy is None or time.monotonic() < next_kill[0] or kills.total() >= 8:
            return  # four rounds of two kills, then let the system finish on its own
        for i, victim in enumerate(workers):
            victim.kill()
            kills[victim.name] += 1
            workers[i] = stack.worker(concurrency=4, name=f"w{i}-{kills.total()}")
        next_kill[0] = time.monotonic() + 4.0

    next_kill = [0.0]
    repeat(crash_when_busy, 0.1)  # from the first stored part on
    job_id = bulk(stack)
    stack.wait_done([job_id], timeout=240)
    stop.set()
    assert kills.total() >= 4, f"only {kills.total()} kills before the job finished"
    statuses = check_invariants(stack, job_id)
    assert statuses["sent"] > N * 0.95


def test_every_dispatch_published_again_and_again(
    make_stack: Callable[..., Stack], repeat: Callable[..., None]
) -> None:
    stack = make_stack(["--latency-ms", "5", "--seed", "6"])
    stack.worker(concurrency=4, beat=True, name="w0")
    stack.worker(concurrency=4, name="w1")
    app = publisher(stack.env["REDIS_URL"])
    channel = stack.cfg.account("nxcloud").channel

    def duplicate() -> None:
        for _ in range(3):  # on top of the dispatches the system publishes itself
            app.send_task(dispatch_task(channel), args=["nxcloud"], queue=channel_queue(channel))
        # Malformed tasks straight to the broker: refused with a reason, never a crash
        # (wait_done fails if a worker process dies).
        for args in ([], [42], ["no-such-account"], ["uspeedo"], ["nxcloud", "extra"]):
            app.send_task(dispatch_task(channel), args=args, queue=channel_queue(channel))

    job_id = bulk(stack)
    repeat(duplicate, 0.02)
    stack.wait_done([job_id], timeout=240)
    assert check_invariants(stack, job_id) == {"sent": N}


def test_redis_killed_and_restarted_mid_job(
    make_stack: Callable[..., Stack],
    monkeypatch: pytest.MonkeyPatch,
    repeat: Callable[..., None],
) -> None:
    """Redis dies without persistence (as good as FLUSHALL) and comes back empty on the same
    port: wake-ups and rate state are gone, the database is not, and the sweep drives on."""
    own: RedisService = start_redis_server()
    try:
        monkeypatch.setenv("REDIS_URL", own.url)
        stack = make_stack(["--latency-ms", "30", "--seed", "8"])
        stack.env["REDIS_URL"] = own.url
        stack.beat()
        workers = [stack.worker(concurrency=4, name="w0"), stack.worker(concurrency=4, name="w1")]

        def supervise() -> None:
            """What compose's restart policy / a Kubernetes Deployment does: Celery's worker
            can exit when its broker vanishes mid-ack (kombu: 'NoneType' has no 'hostname')."""
            for i, proc in enumerate(workers):
                if not proc.alive() and not proc.killed:
                    proc.killed = True  # its exit is the event under test, not a failure
                    workers[i] = stack.worker(concurrency=4, name=f"w{i}-restarted")

        repeat(supervise, 0.05)  # well inside wait_done's 0.25 s liveness poll
        stack.cfg = stack.cfg.__class__(
            stack.cfg.accounts, own.url, stack.cfg.database_url, stack.cfg.source
        )
        job_id = bulk(stack)
        port = int(own.url.rsplit(":", 1)[1].split("/")[0])
        sent_before = 0
        deadline = time.monotonic() + 60
        while sent_before < 2000 and time.monotonic() < deadline:
            sent_before = len(stack.sim_requests()) * 200
            time.sleep(0.1)
        assert own.process is not None
        redis_lib.Redis.from_url(own.url).set("td:test:sentinel", b"1")
        own.process.kill()  # SIGKILL: no shutdown, no persistence
        own.process.wait(timeout=15)
        restarted = start_redis_server(port)
        own.process = restarted.process
        assert redis_ping(own.url)
        # It came back empty (workers may already have written new keys: check ours is gone).
        assert redis_lib.Redis.from_url(own.url).get("td:test:sentinel") is None
        stack.wait_done([job_id], timeout=240)
        assert check_invariants(stack, job_id) == {"sent": N}
    finally:
        own.stop()
