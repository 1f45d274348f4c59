"""A routed job stored like an account's job, on SQLite and PostgreSQL: opted-out recipients
``suppressed`` per the member each row is stored on (and the global list), quiet hours and
weight on the job row and recipients in quiet hours ``deferred``."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from teledispatch.config import Settings, parse_config
from teledispatch.db import optouts as optouts_db
from teledispatch.db.engine import get_engine
from teledispatch.db.migrate import ensure_schema
from teledispatch.db.tables import GLOBAL_OPTOUT, jobs_table, messages_table
from teledispatch.producer import routed, submit
from teledispatch.producer.lane import Lane
from teledispatch.producer.routed import enqueue_route
from teledispatch.routes import parse_routes

_ACCOUNT = {
    "channel": "nxcloud.sms",
    "base_url": "http://nx.test",
    "access_key": "ak",
    "secret": "sk",
    "app_key": "app",
    "linger_ms": 0,
}


def route_settings(db_url: str, **first: Any) -> Settings:
    """Accounts ``a`` and ``b``; route ``r`` sends +86 through ``a`` then ``b``, the rest
    through ``b`` only."""
    accounts = parse_config({"accounts": {"a": {**_ACCOUNT, **first}, "b": dict(_ACCOUNT)}})
    problems: list[str] = []
    routes = parse_routes(
        {"r": {"86": ["a", "b"], "*": ["b"]}},
        {name: acc.channel for name, acc in accounts.items()},
        problems,
    )
    assert problems == []
    return Settings(accounts=accounts, redis_url="redis://fake", database_url=db_url, routes=routes)


@pytest.fixture(autouse=True)
def _quiet_side_effects(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(submit, "wake", lambda *a: None)
    monkeypatch.setattr(routed, "read_circuit", lambda url, account: None)


def statuses(db_url: str, job_id: str) -> dict[str, tuple[str, str, str | None]]:
    m = messages_table
    with get_engine(db_url).connect() as conn:
        rows = conn.execute(
            sa.select(m.c.phone, m.c.account, m.c.status, m.c.error_code).where(
                m.c.job_id == job_id
            )
        ).all()
    return {r.phone: (r.account, r.status, r.error_code) for r in rows}


def test_opted_out_recipients_of_a_routed_job_are_suppressed(database_url: str) -> None:
    cfg = route_settings(database_url)
    ensure_schema(database_url)
    with get_engine(database_url).begin() as conn:
        optouts_db.add(conn, "a", ["+8613900000001"], time.time())
        optouts_db.add(conn, GLOBAL_OPTOUT, ["+8613900000002"], time.time())
        # On b's list, but stored on a: a's list and the global one are what count.
        optouts_db.add(conn, "b", ["+8613900000003", "+447911123456"], time.time())
    phones = [f"+861390000000{i}" for i in range(4)] + ["+447911123456"]
    job = enqueue_route("r", [{"phone": p} for p in phones], defaults={"content": "hi"}, cfg=cfg)
    assert job.total == 5
    assert statuses(database_url, job.job_id) == {
        "+8613900000000": ("a", "queued", None),
        "+8613900000001": ("a", "suppressed", "opted_out"),
        "+8613900000002": ("a", "suppressed", "opted_out"),
        "+8613900000003": ("a", "queued", None),
        "+447911123456": ("b", "suppressed", "opted_out"),
    }
    with get_engine(database_url).connect() as conn:
        total = conn.execute(
            sa.select(jobs_table.c.total).where(jobs_table.c.id == job.job_id)
        ).scalar_one()
    assert total == 5


def _window_around_now_in_china() -> str:
    """A quiet window that holds +86 now and not +44 (Europe/London is 7-8 hours behind)."""
    hour = datetime.now(ZoneInfo("Asia/Shanghai")).hour
    return f"{(hour - 1) % 24:02d}:00-{(hour + 2) % 24:02d}:00"


def test_routed_job_takes_quiet_hours_of_its_first_member_and_its_weight(
    database_url: str,
) -> None:
    window = _window_around_now_in_china()
    cfg = route_settings(database_url, quiet_hours=window)
    phones = ["+8613900000000", "+447911123456"]
    job = enqueue_route(
        "r",
        [{"phone": p} for p in phones],
        defaults={"content": "hi"},
        lane=Lane(weight=2.0),
        cfg=cfg,
    )
    j = jobs_table
    with get_engine(database_url).connect() as conn:
        row = conn.execute(sa.select(j.c.weight, j.c.quiet_hours).where(j.c.id == job.job_id)).one()
    assert (row.weight, row.quiet_hours) == (2.0, window)
    assert statuses(database_url, job.job_id) == {
        "+8613900000000": ("a", "deferred", "quiet_hours"),
        "+447911123456": ("b", "queued", None),
    }


def test_routed_job_of_high_priority_ignores_quiet_hours(database_url: str) -> None:
    cfg = route_settings(database_url)
    job = enqueue_route(
        "r",
        [{"phone": "+8613900000000"}],
        defaults={"content": "hi"},
        lane=Lane(priority="high"),
        quiet_hours=_window_around_now_in_china(),
        cfg=cfg,
    )
    assert statuses(database_url, job.job_id) == {"+8613900000000": ("a", "queued", None)}


def test_a_routed_job_builds_its_message_rows_one_part_at_a_time(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(routed, "PART_SIZE", 3)
    built: list[int] = []
    records = routed._records

    def counted(*args: Any) -> list[dict[str, Any]]:
        made = records(*args)
        built.append(len(made))
        return made

    monkeypatch.setattr(routed, "_records", counted)
    cfg = route_settings(database_url)
    phones = [f"+86139000000{i:02d}" for i in range(8)]
    job = enqueue_route("r", [{"phone": p} for p in phones], defaults={"content": "hi"}, cfg=cfg)
    assert built == [3, 3, 2]
    assert sorted(statuses(database_url, job.job_id)) == phones
    again = enqueue_route(
        "r",
        [{"phone": p} for p in phones],
        defaults={"content": "hi"},
        cfg=cfg,
        idempotency_key="k",
    )
    same = enqueue_route(
        "r",
        [{"phone": p} for p in phones],
        defaults={"content": "hi"},
        cfg=cfg,
        idempotency_key="k",
    )
    assert (same.job_id, same.created) == (again.job_id, False)


def test_routed_job_takes_its_routes_webhook_default_then_its_accounts(
    database_url: str,
) -> None:
    """A job's own callback_url wins, then the route's, then its first member's."""
    cfg = route_settings(database_url, callback_url="https://hooks.example/account")
    routes = parse_routes(
        {"r": {"accounts": ["a", "b"], "callback_url": "https://hooks.example/route"}},
        {"a": "nxcloud.sms", "b": "nxcloud.sms"},
        [],
    )
    routed_cfg = Settings(
        accounts=cfg.accounts, redis_url="redis://fake", database_url=database_url, routes=routes
    )
    hi = {"content": "hi"}
    jobs = [
        enqueue_route("r", [{"phone": "+8613900000000"}], defaults=hi, cfg=routed_cfg),
        enqueue_route("r", [{"phone": "+8613900000001"}], defaults=hi, cfg=cfg),
        enqueue_route(
            "r",
            [{"phone": "+8613900000002"}],
            defaults=hi,
            callback_url="https://hooks.example/job",
            cfg=routed_cfg,
        ),
    ]
    j = jobs_table
    with get_engine(database_url).connect() as conn:
        urls = [
            conn.execute(sa.select(j.c.callback_url).where(j.c.id == job.job_id)).scalar_one()
            for job in jobs
        ]
    assert urls == [
        "https://hooks.example/route",
        "https://hooks.example/account",
        "https://hooks.example/job",
    ]
