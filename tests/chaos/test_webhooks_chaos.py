"""Webhook delivery through real Celery workers that are ``kill -9``ed while they deliver, to
a receiver that answers 500 to 30 % of requests and stalls past the client's timeout on
others: every event arrives at least once; deduplicated by id, each message's events are
exactly its outbox history, in order; every request's signature verifies (a verifier written
here from the README's description)."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from teledispatch.config import load_settings
from teledispatch.db import events as events_db
from teledispatch.db.engine import get_engine
from teledispatch.db.tables import events_table, messages_table
from teledispatch.producer.submit import enqueue_stream
from tests.support import Stack, poll

pytestmark = pytest.mark.integration

SECRET = "whsec-chaos-5"
N = 400
#: The client gives up after this; a stalled answer comes later.
TIMEOUT_S = 1.0
STALL_S = 1.6


def verify(header: str, body: bytes, secret: bytes) -> bool:
    """README: ``t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">``."""
    fields = dict(part.split("=", 1) for part in header.split(","))
    mac = hmac.new(secret, fields["t"].encode() + b"." + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(mac, fields["v1"]) and abs(time.time() - int(fields["t"])) < 600


class Receiver:
    """3 of every 10 requests answered 500; 1 of every 7 answered 200 only after a stall
    longer than the client waits (so its events are in, yet the sender retries them)."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.requests = Counter[str]()
        lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                header = self.headers.get("Teledispatch-Signature", "t=0,v1=")
                with lock:
                    n = outer.requests.total()
                    outer.requests[
                        "bad_signature" if not verify(header, body, SECRET.encode()) else "signed"
                    ] += 1
                    fail = n % 10 < 3
                    stall = not fail and n % 7 == 3
                    outer.requests["500" if fail else "stalled" if stall else "200"] += 1
                if stall:
                    time.sleep(STALL_S)
                if not fail:
                    with lock:
                        outer.events.extend(json.loads(body)["events"])
                self.send_response(500 if fail else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook?token=c5"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def _configure(stack: Stack) -> None:
    stack.configure("nxcloud", callback_secret=SECRET)
    path = Path(stack.env["TELEDISPATCH_CONFIG"])
    hooks = (
        "\n[webhooks]\nallow_http = true\nallow_private_networks = true\n"
        f"batch_size = 10\ntimeout_s = {TIMEOUT_S}\nbackoff_base_s = 0.2\nmax_backoff_s = 1.0\n"
    )
    path.write_text(path.read_text() + hooks)
    stack.cfg = load_settings(path)
    stack.env["TELEDISPATCH_WEBHOOKS_S"] = "0.3"


@pytest.mark.chaos
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_workers_killed_while_delivering_to_a_flaky_stalling_receiver(
    make_stack: Callable[..., Stack], receiver: Receiver
) -> None:
    stack = make_stack(["--item-fail-rate", "0.1", "--seed", "9"])
    _configure(stack)
    stack.beat()
    workers = [stack.worker(concurrency=2, name="w0"), stack.worker(concurrency=2, name="w1")]
    job_id = enqueue_stream(
        "nxcloud",
        ({"phone": f"+86139{i:08d}"} for i in range(N)),
        defaults={"content": "hooked"},
        callback_url=receiver.url,
        cfg=stack.cfg,
    ).job_id
    engine = get_engine(stack.cfg.database_url)

    def pending() -> int:
        return events_db.counts(engine).get(events_db.PENDING, 0)

    # kill -9 one worker (its whole pool) while events are being delivered, then the other,
    # four times in all, each replaced at once.
    poll(lambda: receiver.requests.total() >= 3, 60, "deliveries to start")
    kills = 0
    for i in range(4):
        if not pending():
            break
        victim = workers[i % 2]
        victim.kill()
        kills += 1
        workers[i % 2] = stack.worker(concurrency=2, name=f"w{i % 2}-{i}")
        time.sleep(2.0)  # paces the kills; what is checked is polled below
    assert kills >= 2, "delivery finished before the workers could be killed"

    def all_delivered() -> bool:
        counts = events_db.counts(engine)
        delivered = counts.get(events_db.DELIVERED, 0) > N  # every message's, and job.done
        return delivered and not counts.get(events_db.PENDING) and not counts.get(events_db.DEAD)

    poll(all_delivered, 75, "every event delivered", every=0.5)

    # The outbox is each message's history: one event per reported change, in seq order.
    with engine.connect() as conn:
        outbox = conn.execute(
            sa.select(events_table.c.event_id, events_table.c.message_id, events_table.c.status)
            .where(events_table.c.job_id == job_id)
            .order_by(events_table.c.seq)
        ).all()
        final = dict(
            conn.execute(
                sa.select(messages_table.c.id, messages_table.c.status).where(
                    messages_table.c.job_id == job_id
                )
            ).all()
        )
    history: dict[str | None, list[str]] = {}
    for event_id, message_id, _ in outbox:
        history.setdefault(message_id, []).append(event_id)
    assert len(history) == N + 1  # every message, and the job's job.done (message_id None)
    for message_id, status in final.items():
        last = [r for r in outbox if r[1] == message_id][-1]
        assert last[2] == status

    seen: set[str] = set()
    arrived: dict[str | None, list[str]] = {}
    for event in receiver.events:
        if event["id"] not in seen:
            seen.add(event["id"])
            arrived.setdefault(event["message_id"], []).append(event["id"])
    assert arrived == history  # at least once, deduplicated exactly the history, in order
    assert len(receiver.events) >= len(seen)
    assert receiver.requests["bad_signature"] == 0
    assert receiver.requests["500"] > 0 and receiver.requests["stalled"] > 0
