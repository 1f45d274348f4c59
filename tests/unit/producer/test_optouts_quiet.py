"""Opt-outs and quiet hours through the real producer and dispatcher (SQLite, fakes): an
opted-out recipient is ``suppressed`` at enqueue or when claimed and never sent; a recipient
in quiet hours is ``deferred`` to the window's opening, at enqueue and at claim."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from teledispatch import clock
from teledispatch.producer import optouts
from teledispatch.producer import submit as enqueue_mod
from teledispatch.producer.dry_run import dry_run
from teledispatch.producer.lookup import job_messages, job_status, lookup
from teledispatch.producer.submit import enqueue_stream
from teledispatch.validation import ValidationFailed
from teledispatch.worker.context import Context
from teledispatch.worker.dispatch import dispatch

CN = "+8613800138000"
CN2 = "+8613800138001"
NY = "+12125551234"


def at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


@pytest.fixture(autouse=True)
def _no_wake(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(enqueue_mod, "wake", lambda *a: None)


def sent_phones(ctx: Context) -> list[str]:
    """Numbers the provider was sent, as E.164 (NXCloud takes them without the ``+``)."""
    requests = ctx.transport.requests  # type: ignore[attr-defined]
    return ["+" + i["phone"].lstrip("+") for r in requests for i in json.loads(r.body)["items"]]


def run(ctx: Context) -> None:
    for _ in range(20):
        if dispatch(ctx, "nx").claimed == 0:
            break


def test_opted_out_at_enqueue_is_suppressed_and_never_sent(ctx: Context) -> None:
    cfg = ctx.settings
    assert optouts.add([CN], "nx", cfg=cfg) == 1
    assert optouts.add(["8613800138000"], "nx", cfg=cfg) == 0  # the same number, once
    job = enqueue_stream("nx", [{"phone": CN}, {"phone": CN2}], defaults={"content": "hi"}, cfg=cfg)
    st = job_status(job.job_id, cfg=cfg)
    assert st.counts == {"queued": 1, "suppressed": 1}
    row = lookup(phone=CN, cfg=cfg)[0]
    assert (row.status, row.error_code) == ("suppressed", "opted_out")
    run(ctx)
    assert sent_phones(ctx) == ["8613800138001"[0:0] + CN2.lstrip("+")] or sent_phones(ctx) == [CN2]
    assert job_status(job.job_id, cfg=cfg).counts == {"sent": 1, "suppressed": 1}


def test_global_list_applies_to_every_account_and_remove_undoes(ctx: Context) -> None:
    cfg = ctx.settings
    optouts.add([CN], None, cfg=cfg)
    assert optouts.is_suppressed(CN, "nx", cfg=cfg)
    assert [e.phone for e in optouts.entries(None, cfg=cfg)] == [CN]
    assert optouts.entries("nx", cfg=cfg) == []
    assert optouts.remove([CN], None, cfg=cfg) == 1
    assert not optouts.is_suppressed(CN, "nx", cfg=cfg)


def test_bad_numbers_add_nothing_and_name_each_problem(ctx: Context) -> None:
    with pytest.raises(ValidationFailed) as err:
        optouts.add([CN, "12", "abc"], "nx", cfg=ctx.settings)
    text = str(err.value)
    assert "phones[1]" in text and "phones[2]" in text
    assert optouts.entries("nx", cfg=ctx.settings) == []


def test_opted_out_after_enqueue_is_caught_by_the_claim(ctx: Context) -> None:
    cfg = ctx.settings
    job = enqueue_stream("nx", [{"phone": CN}, {"phone": CN2}], defaults={"content": "hi"}, cfg=cfg)
    optouts.add([CN2], "nx", cfg=cfg)
    run(ctx)
    assert sent_phones(ctx) == [CN]
    assert job_status(job.job_id, cfg=cfg).counts == {"sent": 1, "suppressed": 1}
    assert lookup(phone=CN2, cfg=cfg)[0].error_code == "opted_out"


def test_dry_run_counts_suppressed(ctx: Context) -> None:
    cfg = ctx.settings
    optouts.add([CN], None, cfg=cfg)
    report = dry_run("nx", [{"phone": CN}, {"phone": CN2}], defaults={"content": "hi"}, cfg=cfg)
    assert (report.recipients, report.suppressed) == (2, 1)


# --- quiet hours ------------------------------------------------------------------------


@pytest.fixture
def test_clock(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The producer's quiet-hours clock, moved to a chosen instant (teledispatch/clock.py)."""
    path = tmp_path / "clock"
    monkeypatch.setenv(clock.CLOCK_FILE_ENV, str(path))

    def move_to(epoch: float) -> float:
        import time

        path.write_text(repr(epoch - time.time()))
        return epoch

    return move_to


def test_quiet_hours_defer_at_enqueue_per_recipient_zone(ctx: Context, test_clock: Any) -> None:
    cfg = ctx.settings
    now = test_clock(at("2027-01-15T23:30"))  # Shanghai 07:30 (quiet), New York 18:30
    ctx.clock = lambda: now
    job = enqueue_stream(
        "nx",
        [{"phone": CN}, {"phone": NY}],
        defaults={"content": "hi"},
        quiet_hours="21:00-08:00",
        cfg=cfg,
    )
    views = {v.phone: v for v in job_messages(job.job_id, cfg=cfg)}
    assert views[CN].status == "deferred" and views[CN].error_code == "quiet_hours"
    assert str(views[CN].due_at).startswith("2027-01-16T00:00")
    assert views[NY].status == "queued"
    run(ctx)
    assert sent_phones(ctx) == [NY]
    ctx.clock = lambda: at("2027-01-16T00:00:01")
    run(ctx)
    assert job_status(job.job_id, cfg=cfg).counts == {"sent": 2}


def test_high_priority_ignores_quiet_hours(ctx: Context, test_clock: Any) -> None:
    test_clock(at("2027-01-15T23:30"))
    job = enqueue_stream(
        "nx",
        [{"phone": CN}],
        defaults={"content": "hi"},
        quiet_hours="21:00-08:00",
        priority="high",
        cfg=ctx.settings,
    )
    assert job_status(job.job_id, cfg=ctx.settings).counts == {"queued": 1}


def test_a_message_due_in_quiet_hours_is_held_again_at_claim(ctx: Context, test_clock: Any) -> None:
    cfg = ctx.settings
    test_clock(at("2027-01-15T10:00"))  # Shanghai 18:00: allowed at enqueue
    job = enqueue_stream(
        "nx", [{"phone": CN}], defaults={"content": "hi"}, quiet_hours="21:00-08:00", cfg=cfg
    )
    ctx.clock = lambda: at("2027-01-15T14:00")  # claimed at 22:00 Shanghai (say, a retry)
    run(ctx)
    assert sent_phones(ctx) == []
    view = job_messages(job.job_id, cfg=cfg)[0]
    assert (view.status, view.error_code, view.attempts) == ("deferred", "quiet_hours", 0)
    assert str(view.due_at).startswith("2027-01-16T00:00")


def test_a_bad_window_is_a_validation_problem(ctx: Context) -> None:
    with pytest.raises(ValidationFailed, match="quiet_hours"):
        enqueue_stream("nx", [{"phone": CN}], defaults={"content": "hi"}, quiet_hours="9-5")


def test_suppressed_messages_write_webhook_events_at_enqueue_and_at_claim(ctx: Context) -> None:
    from teledispatch.db import events as events_db

    cfg = ctx.settings
    optouts.add([CN], "nx", cfg=cfg)
    job = enqueue_stream(
        "nx",
        [{"phone": CN}, {"phone": CN2}, {"phone": NY}],
        defaults={"content": "hi"},
        callback_url="https://example.com/hook",
        cfg=cfg,
    )
    optouts.add([CN2], "nx", cfg=cfg)
    run(ctx)
    with ctx.engine.connect() as conn:
        events = events_db.job_events(conn, job.job_id)
    by_phone = {(e.phone, e.status) for e in events if e.phone}
    assert {(CN, "suppressed"), (CN2, "suppressed"), (NY, "sent")} <= by_phone
