"""``CELERY_BROKER_URL`` moves the Celery broker (e.g. to RabbitMQ); Redis stays the store of
limits, circuits and wake-up keys."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from teledispatch import wakeups
from teledispatch.config import load_settings
from teledispatch.producer import submit
from teledispatch.worker import health


def test_the_broker_is_redis_unless_celery_broker_url_is_set(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://cache:6379/0")
    monkeypatch.delenv("CELERY_BROKER_URL", raising=False)
    assert load_settings(tmp_path / "none.toml").celery_broker_url == "redis://cache:6379/0"
    monkeypatch.setenv("CELERY_BROKER_URL", "amqp://guest:guest@rabbit:5672//")
    cfg = load_settings(tmp_path / "none.toml")
    assert cfg.celery_broker_url == "amqp://guest:guest@rabbit:5672//"
    assert cfg.redis_url == "redis://cache:6379/0"


def test_a_wake_up_is_published_to_the_broker_and_deduplicated_in_redis(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://cache:6379/0")
    monkeypatch.setenv("CELERY_BROKER_URL", "amqp://guest:guest@rabbit:5672//")
    cfg = load_settings(tmp_path / "none.toml")
    seen: dict[str, Any] = {}
    monkeypatch.setattr(submit, "_redis", lambda url: seen.setdefault("redis", url))
    monkeypatch.setattr(wakeups, "sender", lambda url: seen.setdefault("sender", url))
    monkeypatch.setattr(wakeups, "kick", lambda *args, **kw: seen.setdefault("kicked", True))
    submit.wake(cfg, object(), 0.0)  # type: ignore[arg-type]
    assert seen == {
        "redis": "redis://cache:6379/0",
        "sender": "amqp://guest:guest@rabbit:5672//",
        "kicked": True,
    }


def test_the_health_check_includes_a_separate_broker(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'td.db'}")
    monkeypatch.setenv("CELERY_BROKER_URL", "amqp://guest:guest@rabbit:5672//")
    monkeypatch.setattr(health, "check_redis", lambda url: None)
    checked: list[str] = []

    def refused(url: str) -> None:
        checked.append(url)
        raise ConnectionRefusedError("[Errno 111] Connection refused")

    monkeypatch.setattr(health, "check_broker", refused)
    found = health.problems(load_settings(tmp_path / "none.toml"))
    assert checked == ["amqp://guest:guest@rabbit:5672//"]
    assert found == ["broker unreachable: ConnectionRefusedError: [Errno 111] Connection refused"]
