"""The outbox drain with a fake receiver and a passed clock (SQLite, in process)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import fakeredis
import pytest
import sqlalchemy as sa

from teledispatch.config import Settings, WebhookSettings, parse_config
from teledispatch.db import events as events_db
from teledispatch.db import jobs as jobs_db
from teledispatch.db import messages as messages_db
from teledispatch.db.engine import get_engine
from teledispatch.db.messages import Update
from teledispatch.db.tables import create_schema
from teledispatch.worker.webhooks import drain
from teledispatch.worker.webhooks.client import Answer

URL = "https://hooks.example/in?token=tok-in-url"
SECRET = "whsec-unit-9f2"
NOW = 2_000_000.0


class Clock:
    def __init__(self) -> None:
        self.t = NOW

    def __call__(self) -> float:
        return self.t


class Receiver:
    """Answers from a script (then 200), recording every request."""

    def __init__(self, *answers: Answer) -> None:
        self.answers = list(answers)
        self.bodies: list[dict[str, object]] = []
        self.headers: list[dict[str, str]] = []

    def __call__(self, url: str, body: bytes, headers: dict[str, str]) -> Answer:
        self.bodies.append(json.loads(body))
        self.headers.append(headers)
        return self.answers.pop(0) if self.answers else Answer(200)


@pytest.fixture
def engine(db_url: str) -> Iterator[sa.Engine]:
    engine = get_engine(db_url)
    create_schema(engine)
    yield engine
    engine.dispose()


def _cfg(db_url: str, **hooks: float) -> Settings:
    accounts = parse_config(
        {
            "accounts": {
                "nx": {
                    "channel": "nxcloud.sms",
                    "base_url": "http://nx",
                    "callback_secret": SECRET,
                }
            }
        }
    )
    # allow_private_networks: no DNS lookup of hooks.example in a unit test.
    webhooks = WebhookSettings(allow_private_networks=True, **hooks)
    return Settings(accounts=accounts, database_url=db_url, webhooks=webhooks)


def _job_with_outcomes(engine: sa.Engine, n: int) -> None:
    with engine.begin() as conn:
        jobs_db.insert_jobs(
            conn,
            [
                {
                    "id": "j",
                    "account": "nx",
                    "channel": "nxcloud.sms",
                    "total": n,
                    "parts": 1,
                    "content_hash": "x",
                    "created_at": NOW,
                    "callback_url": URL,
                }
            ],
        )
        messages_db.insert_messages(
            conn,
            [
                {
                    "id": f"j-{i}",
                    "job_id": "j",
                    "seq": i,
                    "account": "nx",
                    "channel": "nxcloud.sms",
                    "phone": f"+86138000{i:05d}",
                    "payload": "{}",
                    "due_at": NOW,
                    "created_at": NOW,
                    "updated_at": NOW,
                }
                for i in range(n)
            ],
        )
    claim = messages_db.claim(engine, "nx", n, 30.0, NOW)
    messages_db.apply(
        engine, claim.token, [Update.sent(m.id, f"p{m.id}") for m in claim.messages], NOW
    )


def test_events_are_delivered_in_order_signed_and_job_done_last(
    engine: sa.Engine, db_url: str
) -> None:
    cfg = _cfg(db_url, batch_size=2)
    _job_with_outcomes(engine, 3)
    assert drain.finish_jobs(engine, NOW) == 1
    receiver = Receiver()
    report = drain.deliver(engine, cfg, events_db.endpoint_key(URL), clock=Clock(), post=receiver)
    assert report.delivered == 4
    events = [e for body in receiver.bodies for e in body["events"]]  # type: ignore[attr-defined]
    assert [(e["type"], e["message_id"]) for e in events] == [
        ("message.sent", "j-0"),
        ("message.sent", "j-1"),
        ("message.sent", "j-2"),
        ("job.done", None),
    ]
    assert [len(b["events"]) for b in receiver.bodies] == [2, 2]  # type: ignore[arg-type]
    assert receiver.headers[0]["Teledispatch-Signature"].startswith(f"t={int(NOW)},v1=")
    assert events_db.counts(engine) == {"delivered": 4}


def test_a_failed_batch_waits_its_backoff_and_blocks_later_events(
    engine: sa.Engine, db_url: str
) -> None:
    cfg = _cfg(db_url, batch_size=2, backoff_base_s=10.0)
    _job_with_outcomes(engine, 3)
    clock = Clock()
    receiver = Receiver(Answer(503), Answer(429, "30"))
    endpoint = events_db.endpoint_key(URL)
    assert drain.deliver(engine, cfg, endpoint, clock=clock, post=receiver).retried == 2
    clock.t += 5  # before the 10 s backoff: nothing is sent, not even the later event
    assert drain.deliver(engine, cfg, endpoint, clock=clock, post=receiver).delivered == 0
    assert len(receiver.bodies) == 1
    clock.t += 5
    drain.deliver(engine, cfg, endpoint, clock=clock, post=receiver)  # 429, Retry-After 30
    clock.t += 20  # backoff 20 s < Retry-After 30 s: still waiting
    assert drain.deliver(engine, cfg, endpoint, clock=clock, post=receiver).delivered == 0
    clock.t += 10
    assert drain.deliver(engine, cfg, endpoint, clock=clock, post=receiver).delivered == 3
    ids = [e["message_id"] for b in receiver.bodies for e in b["events"]]  # type: ignore[attr-defined]
    assert ids == ["j-0", "j-1", "j-0", "j-1", "j-0", "j-1", "j-2"]


def test_dead_after_the_window_then_replay_delivers(
    engine: sa.Engine, db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    cfg = _cfg(db_url, retry_window_s=60.0, backoff_base_s=20.0)
    _job_with_outcomes(engine, 1)
    clock = Clock()
    endpoint = events_db.endpoint_key(URL)
    down = Receiver(*[Answer(0, None, "timeout")] * 10)
    caplog.set_level(logging.DEBUG)
    for _ in range(10):
        drain.deliver(engine, cfg, endpoint, clock=clock, post=down)
        clock.t += 100
    assert events_db.counts(engine) == {"dead": 1}
    assert len(down.bodies) == 2  # at +0 and +100; the next (+140) is past the 60 s window
    (dead,) = events_db.list_dead(engine)
    assert dead.last_error == "timeout"
    assert events_db.replay_dead(engine, clock.t) == 1
    up = Receiver()
    assert drain.deliver(engine, cfg, endpoint, clock=clock, post=up).delivered == 1
    assert events_db.counts(engine) == {"delivered": 1}
    assert SECRET not in caplog.text and "tok-in-url" not in caplog.text


def test_a_4xx_or_an_unsafe_url_is_dead_at_once(engine: sa.Engine, db_url: str) -> None:
    cfg = _cfg(db_url)
    _job_with_outcomes(engine, 1)
    endpoint = events_db.endpoint_key(URL)
    drain.deliver(engine, cfg, endpoint, clock=Clock(), post=Receiver(Answer(404)))
    assert events_db.counts(engine) == {"dead": 1}
    events_db.replay_dead(engine, NOW)
    strict = Settings(accounts=cfg.accounts, database_url=db_url, webhooks=WebhookSettings())
    never = Receiver()
    drain.deliver(engine, strict, endpoint, clock=Clock(), post=never)
    assert never.bodies == []  # hooks.example is not resolved... or not public: never called
    assert events_db.counts(engine) == {"dead": 1}


def test_the_drain_queues_each_due_endpoint_once(engine: sa.Engine) -> None:
    _job_with_outcomes(engine, 2)
    r = fakeredis.FakeRedis()
    assert drain.due(r, engine, NOW) == [events_db.endpoint_key(URL)]
    assert drain.due(r, engine, NOW) == []  # a delivery task is already queued


def test_a_routed_jobs_events_are_signed_by_its_route_else_its_account(db_url: str) -> None:
    from teledispatch.routes import parse_routes

    cfg = _cfg(db_url)
    problems: list[str] = []
    channels = {"nx": "nxcloud.sms"}
    routes = parse_routes(
        {
            "own": {"accounts": ["nx"], "callback_secret": "whsec-route-own"},
            "plain": {"accounts": ["nx"]},
        },
        channels,
        problems,
    )
    assert problems == []
    cfg = Settings(accounts=cfg.accounts, routes=routes, database_url=db_url, webhooks=cfg.webhooks)
    assert jobs_db.signer_of("nx", "own") == "nx@own"
    assert jobs_db.signer_of("nx", None) == "nx"
    assert drain.secret_of(cfg, "nx@own") == "whsec-route-own"
    assert drain.secret_of(cfg, "nx@plain") == SECRET  # the route has none: the account's
    assert drain.secret_of(cfg, "nx") == SECRET
    assert drain.secret_of(cfg, "gone@own") == "whsec-route-own"
    assert drain.secret_of(cfg, "gone") == ""
