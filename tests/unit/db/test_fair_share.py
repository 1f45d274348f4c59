"""Claims share a lane between its jobs by weight, and a row handed back unsent keeps its
place in its job's order (SQLite here; tests/component/db runs the same on PostgreSQL)."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa

from teledispatch.db import messages as repo
from teledispatch.db.engine import get_engine
from teledispatch.db.tables import messages_table
from teledispatch.producer import submit
from teledispatch.producer.lookup import job_status
from teledispatch.producer.submit import enqueue_stream
from teledispatch.validation import ValidationFailed
from tests.support import make_settings


@pytest.fixture(autouse=True)
def no_wake(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(submit, "wake", lambda cfg, account, delay: None)


def phones(first: int, n: int) -> list[dict[str, Any]]:
    return [{"phone": f"+86138{first + i:08d}"} for i in range(n)]


def jobs_of(claim: repo.Claim) -> Counter[str]:
    return Counter(c.job_id for c in claim.messages)


def later() -> float:
    return datetime.now(UTC).timestamp() + 1


def test_a_job_started_beside_a_big_one_gets_half_of_each_claim(db_url: str) -> None:
    cfg = make_settings(db_url)
    big = enqueue_stream("nx", phones(0, 300), defaults={"content": "x"}, cfg=cfg)
    engine = get_engine(db_url)
    first = repo.claim(engine, "nx", 20, 30.0, later())
    assert jobs_of(first) == {big.job_id: 20}
    small = enqueue_stream("nx", phones(1000, 30), defaults={"content": "x"}, cfg=cfg)
    taken: Counter[str] = Counter()
    for _ in range(3):
        taken += jobs_of(repo.claim(engine, "nx", 20, 30.0, later()))
    assert taken == {big.job_id: 30, small.job_id: 30}
    # The small job is done; the big one has the whole claim again.
    assert jobs_of(repo.claim(engine, "nx", 20, 30.0, later())) == {big.job_id: 20}


def test_weight_scales_a_jobs_share(db_url: str) -> None:
    cfg = make_settings(db_url)
    heavy = enqueue_stream("nx", phones(0, 100), defaults={"content": "x"}, weight=3, cfg=cfg)
    light = enqueue_stream("nx", phones(1000, 100), defaults={"content": "x"}, cfg=cfg)
    engine = get_engine(db_url)
    taken: Counter[str] = Counter()
    for _ in range(4):
        taken += jobs_of(repo.claim(engine, "nx", 20, 30.0, later()))
    assert taken == {heavy.job_id: 60, light.job_id: 20}


def test_a_bad_weight_is_refused_naming_the_field(db_url: str) -> None:
    cfg = make_settings(db_url)
    with pytest.raises(ValidationFailed) as err:
        enqueue_stream("nx", phones(0, 1), defaults={"content": "x"}, weight=0, cfg=cfg)
    assert [(p.field, p.value) for p in err.value.problems] == [("weight", 0)]


def test_lanes_stay_strict_with_shares(db_url: str) -> None:
    cfg = make_settings(db_url)
    low = enqueue_stream("nx", phones(0, 50), defaults={"content": "x"}, priority="low", cfg=cfg)
    a = enqueue_stream("nx", phones(100, 7), defaults={"content": "x"}, cfg=cfg)
    b = enqueue_stream("nx", phones(200, 50), defaults={"content": "x"}, cfg=cfg)
    engine = get_engine(db_url)
    # Normal's two jobs fill the claim (a has 7: b takes the rest); low gets nothing.
    assert jobs_of(repo.claim(engine, "nx", 20, 30.0, later())) == {a.job_id: 7, b.job_id: 13}
    taken: Counter[str] = Counter()
    for _ in range(2):
        taken += jobs_of(repo.claim(engine, "nx", 20, 30.0, later()))
    # b's last 37 rows, then low takes what normal leaves.
    assert taken == {b.job_id: 37, low.job_id: 3}


def test_a_row_handed_back_keeps_its_place_and_waits_for_its_hold(db_url: str) -> None:
    cfg = make_settings(db_url)
    job = enqueue_stream("nx", phones(0, 10), defaults={"content": "x"}, cfg=cfg)
    engine = get_engine(db_url)
    now = later()
    first = repo.claim(engine, "nx", 3, 30.0, now)
    assert {c.id for c in first.messages} == {f"{job.job_id}-{i}" for i in range(3)}
    # No rate slot: handed back, to be tried 2 s later (the dispatcher's give_back).
    back = [repo.Update.requeue(c.id, now + 2) for c in first.messages]
    assert repo.apply(engine, first.token, back, now, finish="") == 3
    with engine.connect() as conn:
        held = conn.execute(
            sa.select(messages_table.c.attempts, messages_table.c.hold_until).where(
                messages_table.c.id == f"{job.job_id}-0"
            )
        ).one()
    assert tuple(held) == (0, now + 2)  # the attempt given back, held for 2 s
    # Meanwhile the job's next rows go (the held ones are not claimed again, nor counted due).
    mid = repo.claim(engine, "nx", 2, 30.0, now + 1)
    assert {c.id for c in mid.messages} == {f"{job.job_id}-{i}" for i in (3, 4)}
    assert repo.has_due(engine, "nx", now + 1)  # 5..9 are due
    # Once the hold is over, the handed-back rows come first again: their place was kept.
    after = repo.claim(engine, "nx", 4, 30.0, now + 2)
    assert {c.id for c in after.messages} == {f"{job.job_id}-{i}" for i in (0, 1, 2, 5)}


def test_status_eta_shares_the_accounts_rate(db_url: str) -> None:
    cfg = make_settings(db_url, max_messages_per_second=50)
    big = enqueue_stream("nx", phones(0, 1000), defaults={"content": "x"}, cfg=cfg)
    small = enqueue_stream("nx", phones(5000, 100), defaults={"content": "x"}, cfg=cfg)
    low = enqueue_stream("nx", phones(9000, 50), defaults={"content": "x"}, priority="low", cfg=cfg)
    now = later()

    def eta(job_id: str) -> float:
        st = job_status(job_id, cfg=cfg, now=now)
        assert st.eta is not None
        return datetime.fromisoformat(st.eta).timestamp()

    # 25/s each while both run: the small one's 100 take 4 s; then the big one has 50/s.
    assert eta(small.job_id) == pytest.approx(now + 4)
    assert eta(big.job_id) == pytest.approx(now + 1100 / 50)
    # Low is served after normal: everything before it, then its own 50.
    assert eta(low.job_id) == pytest.approx(now + 1150 / 50)
    unlimited = make_settings(db_url)
    assert job_status(big.job_id, cfg=unlimited, now=now).eta is None


def test_rows_of_a_lost_batch_keep_their_place(db_url: str) -> None:
    cfg = make_settings(db_url)
    enqueue_stream("nx", phones(0, 6), defaults={"content": "x"}, cfg=cfg)
    engine = get_engine(db_url)
    now = later()
    lost = repo.claim(engine, "nx", 2, 1.0, now)  # its worker dies: the lease runs out
    assert repo.reclaim_expired(engine, [cfg.account("nx")], now + 5) == 2
    again = repo.claim(engine, "nx", 2, 30.0, now + 5)
    assert {c.id for c in again.messages} == {c.id for c in lost.messages}


def test_held_rows_of_a_lane_keep_the_lanes_below_waiting(db_url: str) -> None:
    # Seen in CI: on a saturated account the normal rows handed back for a slot let the low
    # lane's rows into the claims (50 normal messages reached the provider after a low one).
    cfg = make_settings(db_url)
    low = enqueue_stream("nx", phones(0, 20), defaults={"content": "x"}, priority="low", cfg=cfg)
    normal = enqueue_stream("nx", phones(100, 5), defaults={"content": "x"}, cfg=cfg)
    engine = get_engine(db_url)
    now = later()
    first = repo.claim(engine, "nx", 5, 30.0, now)
    assert jobs_of(first) == {normal.job_id: 5}
    back = [repo.Update.requeue(c.id, now + 2) for c in first.messages]
    assert repo.apply(engine, first.token, back, now, finish="") == 5
    # Normal's rows wait for their slot: low gets none of it meanwhile.
    assert jobs_of(repo.claim(engine, "nx", 10, 30.0, now + 1)) == {}
    # Once normal's rows have left, low has the room.
    assert jobs_of(repo.claim(engine, "nx", 10, 30.0, now + 2)) == {normal.job_id: 5, low.job_id: 5}


def test_one_claim_takes_from_hundreds_of_single_jobs(db_url: str) -> None:
    """A burst of OTPs: one claim's take names every job. Its statement stays shallow (a
    chain of 200 jobs' arrays on PostgreSQL was deeper than Python's recursion limit)."""
    cfg = make_settings(db_url)
    for i in range(250):
        enqueue_stream("nx", phones(i, 1), defaults={"content": "x"}, cfg=cfg)
    claim = repo.claim(get_engine(db_url), "nx", 200, 30.0, later())
    assert len(claim.messages) == 200 and len(jobs_of(claim)) == 200
