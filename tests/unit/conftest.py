"""Redis for the limiter's Lua tests: each test runs against fakeredis (with lupa) and a real
Redis, under a key prefix of its own."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import fakeredis
import pytest
import redis

REDIS_URL = "redis://127.0.0.1:6379/15"


def real_redis() -> redis.Redis[bytes]:
    client: redis.Redis[bytes] = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1)
    try:
        client.ping()
    except redis.ConnectionError:
        pytest.skip(f"Redis server at {REDIS_URL} is not reachable (needed for real-Redis runs)")
    return client


@pytest.fixture(params=["fakeredis", "redis"])
def client(request: pytest.FixtureRequest) -> Iterator[redis.Redis[bytes]]:
    if request.param == "fakeredis":
        yield fakeredis.FakeRedis()
        return
    yield real_redis()


@pytest.fixture
def prefix(client: redis.Redis[bytes]) -> Iterator[str]:
    """A key prefix of this test alone, removed afterwards (the real DB may be shared)."""
    p = f"td:rl:test:{uuid.uuid4().hex}"
    yield p
    keys = list(client.scan_iter(match=f"{p}:*"))
    if keys:
        client.delete(*keys)
