"""Webhooks end to end through real HTTP: a local receiver that answers 500 to 30 % of
requests gets every event at least once, each message's events in the order its status
changed, every request signed; a dead endpoint's events are dead-lettered after a short
retry window and delivered on replay. Both databases (the outbox is written by the real
status writes; migration 0006 builds the schema)."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import sqlalchemy as sa

from teledispatch.channels.base import Receipt
from teledispatch.config import Settings, WebhookSettings, parse_config
from teledispatch.db import events as events_db
from teledispatch.db import jobs as jobs_db
from teledispatch.db import messages as messages_db
from teledispatch.db.engine import get_engine
from teledispatch.db.messages import Update
from teledispatch.db.migrate import ensure_schema
from teledispatch.worker.webhooks import drain
from teledispatch.worker.webhooks.client import Client

SECRET = "whsec-integration-77"
N = 20
DEADLINE_S = 90.0


def verify(header: str, body: bytes, secret: bytes) -> bool:
    """Written from the README: t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<body>">."""
    fields = dict(part.split("=", 1) for part in header.split(","))
    mac = hmac.new(secret, fields["t"].encode() + b"." + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(mac, fields["v1"]) and abs(time.time() - int(fields["t"])) < 600


class Receiver:
    def __init__(self, port: int = 0, fail_rate: float = 0.3) -> None:
        self.events: list[dict[str, Any]] = []
        self.requests = 0
        self.failed = 0
        self.bad_signatures = 0
        lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                ok = verify(
                    self.headers.get("Teledispatch-Signature", "t=0,v1="), body, SECRET.encode()
                )
                with lock:
                    outer.requests += 1
                    outer.bad_signatures += 0 if ok else 1
                    # 3 of every 10 requests, the first one included: deterministic 30 %.
                    fail = (outer.requests - 1) % 10 < round(fail_rate * 10)
                    if fail:
                        outer.failed += 1
                    else:
                        outer.events.extend(json.loads(body)["events"])
                self.send_response(500 if fail else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook?token=t1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def _settings(url: str, **hooks: Any) -> Settings:
    accounts = parse_config(
        {
            "accounts": {
                "nx": {"channel": "nxcloud.sms", "base_url": "http://nx", "callback_secret": SECRET}
            }
        }
    )
    webhooks = WebhookSettings(
        allow_http=True,
        allow_private_networks=True,
        backoff_base_s=0.05,
        max_backoff_s=0.2,
        batch_size=3,
        timeout_s=5.0,
        **hooks,
    )
    return Settings(accounts=accounts, database_url=url, webhooks=webhooks)


def _job(url: str, callback: str) -> sa.Engine:
    ensure_schema(url)
    engine = get_engine(url)
    now = time.time()
    job = {"id": "j", "account": "nx", "channel": "nxcloud.sms", "total": N, "parts": 1}
    job |= {"content_hash": "h", "created_at": now, "callback_url": callback}
    rows = [
        {"id": f"j-{i}", "job_id": "j", "seq": i, "account": "nx", "channel": "nxcloud.sms"}
        | {"phone": f"+86139{i:08d}", "payload": "{}", "due_at": now}
        | {"created_at": now, "updated_at": now}
        for i in range(N)
    ]
    with engine.begin() as conn:
        jobs_db.insert_jobs(conn, [job])
        messages_db.insert_messages(conn, rows)
    return engine


def _history(engine: sa.Engine) -> dict[str, list[str]]:
    """Drive every message through two reported changes; returns what they were."""
    now = time.time()
    claim = messages_db.claim(engine, "nx", N, 30.0, now)
    assert len(claim.messages) == N
    updates = [
        Update.sent(f"j-{i}", f"p{i}")
        if i % 2 == 0
        else Update.unknown(f"j-{i}", now, "t", "timeout")
        for i in range(N)
    ]
    assert messages_db.apply(engine, claim.token, updates, now) == N
    for i in range(N):
        if i % 2 == 0:
            receipt = Receipt(delivered=i % 4 == 0, code="x", text="y")
            assert messages_db.settle(engine, "nx", receipt, provider_id=f"p{i}") == 1
        else:
            assert messages_db.set_if_unknown(engine, f"j-{i}", time.time(), status="failed") == 1
    return {
        f"j-{i}": ["sent", "delivered" if i % 4 == 0 else "undelivered"]
        if i % 2 == 0
        else ["unknown", "failed"]
        for i in range(N)
    }


def _run_until(engine: sa.Engine, cfg: Settings, done: Any, client: Client) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not done():
        assert time.monotonic() < deadline, (
            f"not done in {DEADLINE_S} s: {events_db.counts(engine)}"
        )
        drain.finish_jobs(engine, time.time())
        for endpoint in events_db.due_endpoints(engine, time.time()):
            drain.deliver(engine, cfg, endpoint, clock=time.time, post=client.post)
        time.sleep(0.02)


def test_every_event_arrives_in_order_signed_despite_500s(
    database_url: str, receiver: Receiver
) -> None:
    cfg = _settings(database_url)
    engine = _job(database_url, receiver.url)
    expected = _history(engine)
    client = Client(cfg.webhooks.timeout_s, cfg.webhooks.max_response_bytes)

    def all_delivered() -> bool:
        counts = events_db.counts(engine)
        return counts.get("pending", 0) == 0 and counts.get("delivered", 0) == 2 * N + 1

    _run_until(engine, cfg, all_delivered, client)
    client.close()
    assert receiver.failed > 0 and receiver.bad_signatures == 0
    seen: dict[str, dict[str, Any]] = {}
    for event in receiver.events:
        seen.setdefault(event["id"], event)  # at least once: deduplicate by id
    got: dict[str, list[str]] = {}
    for event in seen.values():
        if event["type"] != "job.done":
            assert event["type"] == f"message.{event['status']}"
            got.setdefault(event["message_id"], []).append(event["status"])
    assert got == expected
    done = [e for e in seen.values() if e["type"] == "job.done"]
    assert len(done) == 1 and done[0]["job_id"] == "j"
    last_message_event = max(i for i, e in enumerate(receiver.events) if e["type"] != "job.done")
    assert receiver.events.index(done[0]) > last_message_event


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_dead_endpoint_is_dead_lettered_then_replay_delivers(database_url: str) -> None:
    cfg = _settings(database_url, retry_window_s=1.0)
    port = _free_port()  # nobody listens: connection refused
    url = f"http://127.0.0.1:{port}/hook"
    engine = _job(database_url, url)
    _history(engine)
    client = Client(cfg.webhooks.timeout_s, cfg.webhooks.max_response_bytes)

    def none_pending() -> bool:
        counts = events_db.counts(engine)
        return counts.get("pending", 0) == 0 and counts.get("dead", 0) == 2 * N + 1

    _run_until(engine, cfg, none_pending, client)
    (first, *_) = events_db.list_dead(engine)
    assert first.last_error.startswith("connection error")
    receiver = Receiver(port, fail_rate=0.0)
    try:
        assert events_db.replay_dead(engine, time.time()) == 2 * N + 1
        _run_until(
            engine, cfg, lambda: events_db.counts(engine) == {"delivered": 2 * N + 1}, client
        )
        assert len({e["id"] for e in receiver.events}) == 2 * N + 1
    finally:
        receiver.close()
        client.close()
