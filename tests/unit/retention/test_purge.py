"""``db purge``: old finished jobs go from every table; active or recent ones stay."""

from __future__ import annotations

import sqlalchemy as sa

from teledispatch.db import events as events_db
from teledispatch.db import jobs as jobs_db
from teledispatch.db import messages as messages_db
from teledispatch.db.engine import get_engine
from teledispatch.db.messages import Update
from teledispatch.db.tables import create_schema, messages_table
from teledispatch.retention import (
    BUSY_MEMORY_S,
    BUSY_SHARE,
    Cutoffs,
    Pace,
    account_cutoffs,
    purge,
)
from teledispatch.worker.webhooks import drain
from tests.support import make_settings

DAY = 86400.0
NOW = 100 * DAY


def _job(engine: sa.Engine, job_id: str, created_at: float, n: int, url: str | None) -> None:
    job = {"id": job_id, "account": "nx", "channel": "nxcloud.sms", "total": n, "parts": 1}
    job |= {"content_hash": job_id, "created_at": created_at, "callback_url": url}
    rows = [
        {"id": f"{job_id}-{i}", "job_id": job_id, "seq": i, "account": "nx"}
        | {"channel": "nxcloud.sms", "phone": f"+86139{i:08d}", "payload": "{}"}
        | {"due_at": created_at, "created_at": created_at, "updated_at": created_at}
        for i in range(n)
    ]
    with engine.begin() as conn:
        jobs_db.insert_jobs(conn, [job])
        messages_db.insert_messages(conn, rows)


def _finish(engine: sa.Engine, n: int, claim: messages_db.Claim | None = None) -> None:
    """Claim ``n`` (or take ``claim``) and write their outcomes, as one request's."""
    claim = claim or messages_db.claim(engine, "nx", n, 30.0, NOW)
    (group,) = {m.group_key for m in claim.messages}
    updates = [Update.failed(m.id) for m in claim.messages]
    messages_db.apply(engine, claim.token, updates, NOW, finish=group)


def test_purge_removes_old_finished_jobs_only(db_url: str) -> None:
    engine = get_engine(db_url)
    create_schema(engine)
    _job(engine, "old", NOW - 40 * DAY, 2500, "https://h.example/x")
    _finish(engine, 2500)  # finished; its 2500 events are pending
    _job(engine, "active", NOW - 40 * DAY, 3, None)  # stored after the claim: stays queued
    _job(engine, "recent", NOW - 1 * DAY, 2, None)
    _finish(engine, 2)
    cutoff = NOW - 30 * DAY
    # Undelivered webhook events keep a job, and so does a job.done not yet written.
    assert purge(engine, cutoff, dry_run=True).jobs == []
    with engine.begin() as conn:
        seqs = [int(r.seq) for r in events_db.job_events(conn, "old")]
    events_db.mark_delivered(engine, events_db.endpoint_key("https://h.example/x"), seqs, NOW)
    assert purge(engine, cutoff, dry_run=True).jobs == []
    assert drain.finish_jobs(engine, NOW) == 1
    with engine.begin() as conn:
        seqs = [int(r.seq) for r in events_db.job_events(conn, "old")]
    events_db.mark_delivered(engine, events_db.endpoint_key("https://h.example/x"), seqs, NOW)
    dry = purge(engine, cutoff, dry_run=True)
    assert (dry.jobs, dry.messages) == (["old"], 2500)
    with engine.connect() as conn:
        assert messages_db.count_job_messages(conn, "old") == 2500
    report = purge(engine, cutoff)
    assert (report.jobs, report.messages, report.events) == (["old"], 2500, 2501)
    with engine.connect() as conn:
        assert jobs_db.get_job(conn, "old") is None
        assert messages_db.count_job_messages(conn, "old") == 0
        assert events_db.job_events(conn, "old") == []
        assert messages_db.count_job_messages(conn, "active") == 3
        assert jobs_db.get_job(conn, "recent") is not None
    engine.dispose()


def test_purge_takes_a_jobs_attempts_and_no_other(db_url: str) -> None:
    from teledispatch.db import attempts as attempts_db

    engine = get_engine(db_url)
    create_schema(engine)
    _job(engine, "old", NOW - 40 * DAY, 1, None)
    _job(engine, "recent", NOW - 1 * DAY, 1, None)
    _finish(engine, 2)
    rows = [attempts_db.AttemptRow(f"{j}-0", "nx", NOW, "paused") for j in ("old", "recent")]
    with engine.begin() as conn:
        attempts_db.insert(conn, rows)
    assert purge(engine, NOW - 30 * DAY).jobs == ["old"]
    with engine.connect() as conn:
        left = attempts_db.for_messages(conn, ["old-0", "recent-0"])
    assert list(left) == ["recent-0"]


def _engine(db_url: str) -> sa.Engine:
    engine = get_engine(db_url)
    create_schema(engine)
    return engine


def test_each_account_keeps_its_jobs_for_its_retention_days(db_url: str) -> None:
    engine = _engine(db_url)
    _job(engine, "a", NOW - 10 * DAY, 2, None)
    _finish(engine, 2)
    cfg = make_settings(db_url, retention_days=7)
    # nx keeps 7 days: its 10-day-old job goes; another account's keeps the default 30.
    assert purge(engine, account_cutoffs(cfg, NOW), dry_run=True).jobs == ["a"]
    longer = make_settings(db_url, retention_days=14)
    assert purge(engine, account_cutoffs(longer, NOW), dry_run=True).jobs == []
    cutoffs = Cutoffs(NOW - 30 * DAY, {"other": NOW})
    assert purge(engine, cutoffs, dry_run=True).jobs == []
    assert purge(engine, account_cutoffs(cfg, NOW)).jobs == ["a"]
    engine.dispose()


def test_a_budget_stops_between_batches_and_the_next_run_finishes(db_url: str) -> None:
    engine = _engine(db_url)
    _job(engine, "big", NOW - 40 * DAY, 2500, None)
    _finish(engine, 2500)
    asked = []

    def stop() -> bool:
        asked.append(1)
        return len(asked) > 1  # after the first 1,000-row batch

    first = purge(engine, NOW - 30 * DAY, stop=stop)
    assert (first.jobs, first.messages, first.stopped) == ([], 1000, True)
    with engine.connect() as conn:
        assert jobs_db.get_job(conn, "big") is not None  # the job row goes last
        assert messages_db.count_job_messages(conn, "big") == 1500
    rest = purge(engine, NOW - 30 * DAY)
    assert (rest.jobs, rest.messages, rest.stopped) == (["big"], 1500, False)
    engine.dispose()


def test_a_message_worked_on_again_is_never_deleted(db_url: str) -> None:
    engine = _engine(db_url)
    _job(engine, "j", NOW - 40 * DAY, 3, None)
    _finish(engine, 3)
    # Between the purge's look and its delete, a message is claimable again (a re-enqueued
    # part, a reconcile): the delete itself leaves it, and the job row stays.
    with engine.begin() as conn:
        conn.execute(
            sa.update(messages_table).where(messages_table.c.id == "j-1").values(status="queued")
        )
    assert messages_db.delete_job_messages(engine, "j", 1000) == 2
    with engine.connect() as conn:
        assert messages_db.count_job_messages(conn, "j") == 1
    assert purge(engine, NOW - 30 * DAY).jobs == []
    with engine.connect() as conn:
        assert jobs_db.get_job(conn, "j") is not None
    engine.dispose()


class Ticks:
    """A clock that moves ``step`` seconds each time it is read: every batch takes ``step``."""

    def __init__(self, step: float) -> None:
        self.t = 0.0
        self.step = step

    def __call__(self) -> float:
        self.t += self.step
        return self.t


def test_a_purge_gives_way_while_requests_are_in_flight(db_url: str) -> None:
    engine = _engine(db_url)
    _job(engine, "old", NOW - 40 * DAY, 2500, None)
    _finish(engine, 2500)
    _job(engine, "live", NOW, 3, None)
    live = messages_db.claim(engine, "nx", 3, 30.0, NOW)  # a request in flight
    pauses: list[float] = []
    ticks = Ticks(0.01)
    pace = Pace(lambda: messages_db.dispatch_at_work(engine), ticks, pauses.append)
    assert purge(engine, NOW - 30 * DAY, pace=pace).messages == 2500
    # After each batch (3 of messages, the empty ones that end each loop) a pause of
    # (1 - share) / share of its 10 ms: the purge works a fifth of the time.
    assert len(pauses) == 5
    assert all(abs(p - 0.01 * (1 - BUSY_SHARE) / BUSY_SHARE) < 1e-9 for p in pauses)
    _finish(engine, 3, live)
    _job(engine, "old2", NOW - 40 * DAY, 1500, None)
    _finish(engine, 1500)
    pauses.clear()
    ticks.t += BUSY_MEMORY_S  # the last busy sample is that long ago
    assert purge(engine, NOW - 30 * DAY, pace=pace).messages == 1500
    assert pauses == []  # nothing in flight: full speed
    engine.dispose()


def test_one_busy_sample_paces_the_batches_of_the_next_second() -> None:
    samples = iter([True, False, False, False])
    ticks = Ticks(0.01)
    pauses: list[float] = []
    pace = Pace(lambda: next(samples), ticks, pauses.append)
    assert pace.run(lambda: 1) == 1
    pace.run(lambda: 2)  # idle now, but busy 0.02 s ago
    assert len(pauses) == 2
    ticks.t += BUSY_MEMORY_S
    pace.run(lambda: 3)
    pace.run(lambda: 4)
    assert len(pauses) == 2  # a second after the last busy sample: full speed
