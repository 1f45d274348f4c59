"""Priority lanes and expiry in the database: claims serve high, then normal, then low; a
row past its expiry is written ``expired`` by the claim or the sweep, never handed out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from teledispatch.db import messages as repo
from teledispatch.db.engine import get_engine
from teledispatch.db.tables import create_schema, messages_table
from teledispatch.producer import submit
from teledispatch.producer.lookup import job_status
from teledispatch.producer.submit import enqueue_stream
from teledispatch.statuses import EXPIRED, TERMINAL, TRANSITIONS, Status
from teledispatch.validation import ValidationFailed
from tests.support import make_settings


@pytest.fixture(autouse=True)
def no_wake(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(submit, "wake", lambda cfg, account, delay: None)


def phones(first: int, n: int) -> list[dict[str, Any]]:
    return [{"phone": f"+86138{first + i:08d}"} for i in range(n)]


def rows(url: str) -> dict[str, tuple[str, int, float | None]]:
    engine = get_engine(url)
    with engine.connect() as conn:
        found = conn.execute(
            sa.select(
                messages_table.c.id,
                messages_table.c.status,
                messages_table.c.priority,
                messages_table.c.expires_at,
            )
        ).all()
    return {r[0]: (r[1], r[2], r[3]) for r in found}


def test_claims_serve_high_then_normal_then_low(db_url: str) -> None:
    cfg = make_settings(db_url)
    low = enqueue_stream("nx", phones(0, 3), defaults={"content": "x"}, priority="low", cfg=cfg)
    normal = enqueue_stream("nx", phones(10, 3), defaults={"content": "x"}, cfg=cfg)
    high = enqueue_stream("nx", phones(20, 2), defaults={"content": "x"}, priority="high", cfg=cfg)
    engine = get_engine(db_url)
    now = datetime.now(UTC).timestamp() + 1
    first = repo.claim(engine, "nx", 4, 30.0, now)
    jobs = [c.id.rsplit("-", 1)[0] for c in first.messages]
    assert jobs == [high.job_id] * 2 + [normal.job_id] * 2
    second = repo.claim(engine, "nx", 4, 30.0, now)
    assert [c.id.rsplit("-", 1)[0] for c in second.messages] == [normal.job_id] + [low.job_id] * 3
    assert {p for _, p, _ in rows(db_url).values()} == {0, 1, 2}


def test_the_account_default_priority_applies(db_url: str) -> None:
    cfg = make_settings(db_url, default_priority="high")
    job = enqueue_stream("nx", phones(0, 1), defaults={"content": "x"}, cfg=cfg)
    assert rows(db_url)[f"{job.job_id}-0"][1] == 0


def test_a_row_claimed_past_its_expiry_is_expired_not_handed_out(db_url: str) -> None:
    cfg = make_settings(db_url)
    job = enqueue_stream("nx", phones(0, 2), defaults={"content": "x"}, ttl_s=60, cfg=cfg)
    other = enqueue_stream("nx", phones(10, 1), defaults={"content": "x"}, cfg=cfg)
    engine = get_engine(db_url)
    later = datetime.now(UTC).timestamp() + 61
    claim = repo.claim(engine, "nx", 10, 30.0, later)
    assert [c.id for c in claim.messages] == [f"{other.job_id}-0"]
    assert claim.expired == 2
    st = job_status(job.job_id, cfg=cfg)
    assert st.counts == {"expired": 2} and st.done


def test_the_sweep_expires_queued_and_deferred_rows(db_url: str) -> None:
    cfg = make_settings(db_url)
    at = datetime.now(UTC) + timedelta(seconds=30)
    job = enqueue_stream("nx", phones(0, 3), defaults={"content": "x"}, expires_at=at, cfg=cfg)
    keep = enqueue_stream("nx", phones(10, 1), defaults={"content": "x"}, cfg=cfg)
    engine = get_engine(db_url)
    now = datetime.now(UTC).timestamp()
    claim = repo.claim(engine, "nx", 1, 30.0, now)  # the first row: held by a window
    held = [repo.Update.deferred(claim.messages[0].id, now + 600, "rate_window", "held")]
    repo.apply(engine, claim.token, held, now, finish=claim.messages[0].group_key)
    assert repo.expire_unsent(engine, at.timestamp() - 1) == 0
    assert repo.expire_unsent(engine, at.timestamp()) == 3
    found = rows(db_url)
    assert [found[f"{job.job_id}-{i}"][0] for i in range(3)] == [EXPIRED] * 3
    assert found[f"{keep.job_id}-0"][0] == "queued"


def test_expired_is_terminal_and_reached_only_from_unsent_rows() -> None:
    assert EXPIRED in TERMINAL and TRANSITIONS[EXPIRED] == frozenset()
    reach = {s for s, targets in TRANSITIONS.items() if EXPIRED in targets}
    assert reach == {Status.QUEUED, Status.DEFERRED, Status.SENDING}


def test_bad_lane_options_are_refused_in_one_line(db_url: str) -> None:
    cfg = make_settings(db_url)
    naive = datetime(2030, 1, 1)
    with pytest.raises(ValidationFailed) as err:
        enqueue_stream(
            "nx",
            phones(0, 1),
            defaults={"content": "x"},
            priority="urgent",
            expires_at=naive,
            cfg=cfg,
        )
    text = str(err.value)
    assert "priority = 'urgent': one of high, normal, low" in text
    assert "expires_at" in text and "timezone" in text
    create_schema(get_engine(db_url))
    assert rows(db_url) == {}
