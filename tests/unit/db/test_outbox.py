"""The outbox: an event row per reported status change, in the change's transaction, only
for jobs with a callback URL (SQLite, in process)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from teledispatch.channels.base import Receipt
from teledispatch.db import events as events_db
from teledispatch.db import jobs as jobs_db
from teledispatch.db import messages as messages_db
from teledispatch.db.engine import get_engine
from teledispatch.db.messages import Update
from teledispatch.db.tables import create_schema
from teledispatch.worker.webhooks import drain

NOW = 1_000_000.0
URL = "https://apps.example/hooks?token=abc"


@pytest.fixture
def engine(db_url: str) -> Iterator[sa.Engine]:
    engine = get_engine(db_url)
    create_schema(engine)
    yield engine
    engine.dispose()


def _job(
    engine: sa.Engine,
    job_id: str,
    n: int,
    callback_url: str | None,
    expires_at: float | None = None,
) -> None:
    job = {
        "id": job_id,
        "account": "nx",
        "channel": "nxcloud.sms",
        "total": n,
        "parts": 1,
        "content_hash": "x",
        "created_at": NOW,
        "callback_url": callback_url,
    }
    rows: list[dict[str, Any]] = [
        {
            "id": f"{job_id}-{i}",
            "job_id": job_id,
            "seq": i,
            "account": "nx",
            "channel": "nxcloud.sms",
            "phone": f"+8613800000{i:03d}",
            "payload": "{}",
            "due_at": NOW,
            "created_at": NOW,
            "updated_at": NOW,
            "expires_at": expires_at,
        }
        for i in range(n)
    ]
    with engine.begin() as conn:
        jobs_db.insert_jobs(conn, [job])
        messages_db.insert_messages(conn, rows)


def _events(engine: sa.Engine, job_id: str) -> list[tuple[str, str | None, str | None]]:
    with engine.connect() as conn:
        return [(r.type, r.message_id, r.provider_id) for r in events_db.job_events(conn, job_id)]


def test_status_changes_of_a_job_with_a_callback_become_events_in_order(
    engine: sa.Engine,
) -> None:
    _job(engine, "j1", 2, URL)
    claim = messages_db.claim(engine, "nx", 10, 30.0, NOW)
    assert len(claim.messages) == 2
    # The claim (queued → sending) is not reported: the dispatcher's business.
    assert _events(engine, "j1") == []
    updates = [Update.sent("j1-0", "p0"), Update.failed("j1-1", "E1", "refused")]
    assert messages_db.apply(engine, claim.token, updates, NOW + 1) == 2
    receipt = Receipt(delivered=True, code="DELIVRD", text="")
    assert messages_db.settle(engine, "nx", receipt, provider_id="p0", now=NOW + 2) == 1
    assert _events(engine, "j1") == [
        ("message.sent", "j1-0", "p0"),
        ("message.failed", "j1-1", None),
        ("message.delivered", "j1-0", "p0"),
    ]
    with engine.connect() as conn:
        first = events_db.job_events(conn, "j1")[1]
    assert (first.error_code, first.error_text, first.phone) == ("E1", "refused", "+8613800000001")
    assert first.endpoint == events_db.endpoint_key(URL) and URL not in first.endpoint


def test_a_job_without_a_callback_writes_no_event(engine: sa.Engine) -> None:
    _job(engine, "j2", 3, None)
    claim = messages_db.claim(engine, "nx", 10, 30.0, NOW)
    messages_db.apply(engine, claim.token, [Update.sent(m.id, "p") for m in claim.messages], NOW)
    with engine.connect() as conn:
        assert events_db.job_events(conn, "j2") == []
    assert events_db.counts(engine) == {}


def test_cancel_and_reclaim_are_reported(engine: sa.Engine, ctx: Any) -> None:
    _job(engine, "j3", 3, URL)
    claim = messages_db.claim(engine, "nx", 1, 30.0, NOW)
    with engine.begin() as conn:
        assert messages_db.cancel_unclaimed(conn, "j3", NOW) == 2
    assert messages_db.mark_departing(engine, claim.token, "", NOW)
    account = ctx.settings.accounts["nx"]
    assert messages_db.reclaim_expired(engine, [account], NOW + 100) == 1
    types = [t for t, _, _ in _events(engine, "j3")]
    assert types == ["message.cancelled", "message.cancelled", "message.unknown"]


def test_job_done_is_recorded_once_when_nothing_is_active(engine: sa.Engine) -> None:
    _job(engine, "j4", 1, URL)
    with engine.connect() as conn:
        (row,) = jobs_db.open_with_callback(conn, 10)
        assert not messages_db.job_is_finished(conn, "j4", row.total)
    claim = messages_db.claim(engine, "nx", 10, 30.0, NOW)
    messages_db.apply(engine, claim.token, [Update.failed("j4-0", "E", "no")], NOW)
    with engine.begin() as conn:
        assert messages_db.job_is_finished(conn, "j4", 1)
        assert jobs_db.claim_done(conn, "j4", NOW)
        assert not jobs_db.claim_done(conn, "j4", NOW)
        assert jobs_db.open_with_callback(conn, 10) == []


def test_expiry_at_claim_and_by_the_sweep_is_reported_and_finishes_the_job(
    engine: sa.Engine,
) -> None:
    _job(engine, "j5", 3, URL, expires_at=NOW + 10)
    first = messages_db.claim(engine, "nx", 1, 30.0, NOW + 20)
    # The claim found its row past its expiry: written ``expired``, never handed out.
    assert (first.messages, first.expired) == ([], 1)
    assert messages_db.expire_unsent(engine, NOW + 21) == 2
    events = _events(engine, "j5")
    assert [t for t, _, _ in events] == ["message.expired"] * 3
    assert sorted(mid or "" for _, mid, _ in events) == ["j5-0", "j5-1", "j5-2"]
    with engine.connect() as conn:
        (row,) = events_db.job_events(conn, "j5")[:1]
    assert (row.status, row.error_code) == ("expired", messages_db.EXPIRED_CODE)
    # Nothing active is left: the drain's next pass writes the job's ``job.done``.
    assert drain.finish_jobs(engine, NOW + 22) == 1
    assert [t for t, _, _ in _events(engine, "j5")][-1] == "job.done"
