"""Campaigns through real processes, on SQLite and PostgreSQL: quiet hours in three time
zones crossed on a clock the test moves (never by waiting), opt-outs made before and after
enqueue, and a dry run that enqueues nothing."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from teledispatch import clock
from teledispatch.db.engine import get_engine
from teledispatch.db.tables import messages_table
from teledispatch.producer import optouts
from teledispatch.producer.dry_run import dry_run
from teledispatch.producer.lookup import job_status
from teledispatch.producer.submit import enqueue_stream
from teledispatch.quiet_hours import Window, hold, zones_for
from tests.support import Stack, poll

pytestmark = pytest.mark.integration

QUIET = "21:00-08:00"
#: Three recipients in each of three zones (January: UTC-5, UTC+8, UTC+0).
PHONES = {
    "new_york": [f"+1212555{i:04d}" for i in range(3)],
    "shanghai": [f"+86138001380{i:02d}" for i in range(3)],
    "london": [f"+4479111234{i:02d}" for i in range(3)],
}


def at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def sent_by_phone(stack: Stack) -> dict[str, float]:
    """Phone → when (test clock) the simulator accepted its message."""
    out: dict[str, float] = {}
    for request in stack.sim_requests():
        for message_id in request["accepted"]:
            out[message_id] = request["t"]
    return out


def statuses(url: str, job_id: str) -> dict[str, tuple[str, str | None, float]]:
    m = messages_table.c
    with get_engine(url).connect() as conn:
        rows = conn.execute(
            sa.select(m.phone, m.status, m.error_code, m.due_at).where(m.job_id == job_id)
        ).all()
    return {r.phone: (r.status, r.error_code, r.due_at) for r in rows}


def test_quiet_hours_in_three_zones_on_a_moved_clock(
    make_stack: Callable[..., Stack], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock_file = tmp_path / "test-clock"
    monkeypatch.setenv(clock.CLOCK_FILE_ENV, str(clock_file))

    def move_to(epoch: float) -> None:
        clock_file.write_text(repr(epoch - time.time()))

    # 23:30 UTC: 18:30 in New York (allowed), 07:30 in Shanghai (quiet until 00:00 UTC),
    # 23:30 in London (quiet until 08:00 UTC).
    move_to(at("2027-01-15T23:30"))
    stack = make_stack()  # the simulator stamps arrivals on the same clock
    stack.worker(concurrency=2, beat=True)
    recipients = [{"phone": p} for zone in PHONES.values() for p in zone]
    job = enqueue_stream(
        "nxcloud", recipients, defaults={"content": "sale"}, quiet_hours=QUIET, cfg=stack.cfg
    )
    url = stack.cfg.database_url

    def sent(n: int) -> bool:
        return job_status(job.job_id, cfg=stack.cfg).counts.get("sent", 0) >= n

    poll(lambda: sent(3), 60, "New York's messages")
    rows = statuses(url, job.job_id)
    for phone in PHONES["shanghai"]:
        assert rows[phone][:2] == ("deferred", "quiet_hours")
        assert rows[phone][2] == at("2027-01-16T00:00")
    for phone in PHONES["london"]:
        assert rows[phone][:2] == ("deferred", "quiet_hours")
        assert rows[phone][2] == at("2027-01-16T08:00")

    move_to(at("2027-01-16T00:00:05"))  # Shanghai's morning; London still asleep
    poll(lambda: sent(6), 60, "Shanghai's messages")
    assert all(statuses(url, job.job_id)[p][0] == "deferred" for p in PHONES["london"])

    move_to(at("2027-01-16T08:00:05"))
    stack.wait_done([job.job_id], timeout=60)
    assert job_status(job.job_id, cfg=stack.cfg).counts == {"sent": 9}

    # Every message reached the provider inside its recipient's allowed hours.
    arrived = sent_by_phone(stack)
    window = Window.parse(QUIET)
    by_id = {f"{job.job_id}-{i}": r["phone"] for i, r in enumerate(recipients)}
    assert set(arrived) == set(by_id)
    for message_id, t in arrived.items():
        phone = by_id[message_id]
        assert hold(window, zones_for(phone), t) is None, (phone, t)
    ny = max(arrived[i] for i, p in by_id.items() if p in PHONES["new_york"])
    sh = [arrived[i] for i, p in by_id.items() if p in PHONES["shanghai"]]
    ld = [arrived[i] for i, p in by_id.items() if p in PHONES["london"]]
    assert ny < at("2027-01-16T00:00") <= min(sh) and max(sh) < at("2027-01-16T08:00") <= min(ld)


def test_opt_outs_before_and_after_enqueue_and_a_dry_run(make_stack: Callable[..., Stack]) -> None:
    stack = make_stack()
    before, after, kept = "+8613800138000", "+8613800138001", "+8613800138002"
    recipients = [{"phone": p} for p in (before, after, kept)]
    optouts.add([before], "nxcloud", cfg=stack.cfg)

    report = dry_run("nxcloud", recipients, defaults={"content": "hi"}, cfg=stack.cfg)
    assert (report.recipients, report.suppressed) == (3, 1)
    m = messages_table.c
    with get_engine(stack.cfg.database_url).connect() as conn:
        assert conn.execute(sa.select(sa.func.count(m.id))).scalar_one() == 0  # nothing stored

    job = enqueue_stream("nxcloud", recipients, defaults={"content": "hi"}, cfg=stack.cfg)
    optouts.add([after], None, cfg=stack.cfg)  # the global list, before any worker claims
    stack.worker(concurrency=2, beat=True)
    stack.wait_done([job.job_id], timeout=60)

    assert job_status(job.job_id, cfg=stack.cfg).counts == {"sent": 1, "suppressed": 2}
    rows = statuses(stack.cfg.database_url, job.job_id)
    assert rows[before][:2] == rows[after][:2] == ("suppressed", "opted_out")
    arrived = sent_by_phone(stack)
    assert set(arrived) == {f"{job.job_id}-2"}  # only the one still opted in reached it
    assert not any(r["ids"] and r["ids"] != [f"{job.job_id}-2"] for r in stack.sim_requests())
