"""What a worker says while its database or Redis is down: one line when an outage starts,
a summary a minute, one line when it ends; the health check names what is unreachable."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import redis
import sqlalchemy.exc

from teledispatch.config import Settings
from teledispatch.worker import health
from tests.support import make_settings


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _db_error() -> Exception:
    return sqlalchemy.exc.OperationalError("SELECT 1", {}, Exception("connection refused\nmore"))


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "teledispatch.health"]


def test_an_outage_logs_its_start_a_summary_a_minute_and_its_end(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    outages = health.OutageLog(clock=clock)
    with caplog.at_level(logging.INFO, logger="teledispatch.health"):
        for _ in range(121):  # two minutes of a task a second failing
            outages.failed(health.DATABASE, _db_error())
            clock.now += 1
        outages.recovered(health.DATABASE)
        outages.recovered(health.DATABASE)  # no outage open: nothing to say
    lines = _warnings(caplog)
    assert len(lines) == 4, lines
    assert lines[0].startswith("database unreachable: OperationalError:")
    assert "\n" not in lines[0] and "more" not in lines[0]
    assert lines[1].startswith("database still unreachable after 60 s (61 failed tasks)")
    assert lines[2].startswith("database still unreachable after 120 s")
    assert lines[3] == "database reachable again after 121 s (121 failed tasks)"
    assert not any(r.exc_info for r in caplog.records), "a traceback was logged"


def test_errors_are_told_apart_by_dependency() -> None:
    assert health.dependency_of(_db_error()) == health.DATABASE
    assert health.dependency_of(redis.ConnectionError("refused")) == health.REDIS
    assert health.dependency_of(redis.TimeoutError("slow")) == health.REDIS
    assert health.dependency_of(ValueError("a bug")) is None


def test_guarded_turns_an_outage_into_one_line_and_closes_it_after_a_success(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cfg = make_settings(f"sqlite:///{tmp_path / 'td.db'}")
    outages = health.OutageLog(clock=Clock())
    redis_up = {"now": False}

    def check_redis(url: str) -> None:
        if not redis_up["now"]:
            raise redis.ConnectionError("still refused")

    monkeypatch.setattr(health, "check_redis", check_redis)

    def down() -> int:
        raise redis.ConnectionError("Error 111 connecting to 127.0.0.1:6379")

    with caplog.at_level(logging.INFO, logger="teledispatch.health"):
        for _ in range(3):
            with pytest.raises(health.DependencyDown, match="redis unreachable"):
                health.guarded(outages, lambda: cfg, down)
        assert health.guarded(outages, lambda: cfg, lambda: 7) == 7  # redis probed: still down
        assert outages.down == ["redis"]
        redis_up["now"] = True
        assert health.guarded(outages, lambda: cfg, lambda: 8) == 8
    assert outages.down == []
    lines = _warnings(caplog)
    assert len(lines) == 2 and lines[1].startswith("redis reachable again"), lines
    with pytest.raises(ValueError):  # not an outage: raised as it is
        health.guarded(outages, lambda: cfg, lambda: int("x"))
    assert outages.down == []


def test_problems_names_every_unreachable_dependency(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    ok: Settings = make_settings(f"sqlite:///{tmp_path / 'td.db'}")
    monkeypatch.setattr(health, "check_redis", lambda url: None)
    assert health.problems(ok) == []

    def refused(url: str) -> None:
        raise redis.ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr(health, "check_redis", refused)
    missing = make_settings(f"sqlite:///{tmp_path / 'no' / 'such' / 'dir.db'}")
    found = health.problems(missing)
    assert [line.split(":")[0] for line in found] == ["database unreachable", "redis unreachable"]
    assert "Connection refused" in found[1]


def test_the_sweep_is_quiet_at_info_and_loud_when_it_breaks() -> None:
    quiet = health.QuietTaskLogs(frozenset({"maintenance.sweep"}))

    def record(level: int, name: str) -> logging.LogRecord:
        args = {"name": name, "id": "1", "runtime": 0.01, "return_value": "{}"}
        return logging.LogRecord("celery.app.trace", level, "", 0, "Task %(name)s", (args,), None)

    assert not quiet.filter(record(logging.INFO, "maintenance.sweep"))
    assert quiet.filter(record(logging.INFO, "dispatch.nxcloud.sms"))
    assert quiet.filter(record(logging.ERROR, "maintenance.sweep"))
    beat = logging.LogRecord(
        "celery.beat",
        logging.INFO,
        "",
        0,
        "Sending due task %s (%s)",
        ("sweep", "maintenance.sweep"),
        None,
    )
    assert not quiet.filter(beat)
