"""Finding a Redis for the demo: existing, else redis-server from PATH, else fakeredis."""

from __future__ import annotations

import shutil

import pytest
import redis

from teledispatch.dev.redis import ensure_redis, free_port

UNREACHABLE = f"redis://127.0.0.1:{free_port()}/0"


def test_falls_back_to_embedded_fakeredis_without_redis_server(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    service = ensure_redis(UNREACHABLE)
    try:
        assert service.kind == "fakeredis"
        client = redis.Redis.from_url(service.url)
        assert client.set("k", "v") and client.get("k") == b"v"
    finally:
        service.stop()
    assert service.process is not None and service.process.poll() is not None


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server not on PATH")
def test_starts_redis_server_when_none_answers() -> None:
    service = ensure_redis(UNREACHABLE)
    try:
        assert service.kind == "redis-server"
        assert redis.Redis.from_url(service.url).ping()
    finally:
        service.stop()
