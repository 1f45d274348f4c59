"""Redis for the limiter's Lua: each test runs against fakeredis (with lupa) and the tier's own
redis-server, under a key prefix of its own."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import fakeredis
import pytest
import redis

from teledispatch.dev.redis import RedisService

#: Where module-level helpers (hypothesis properties, forkserver children) find the real Redis:
#: they cannot take fixtures, so the session fixture below publishes its URL here.
REDIS_URL_ENV = "TELEDISPATCH_TEST_REDIS_URL"


@pytest.fixture(scope="session", autouse=True)
def real_redis_url(redis_service: RedisService) -> Iterator[str]:
    os.environ[REDIS_URL_ENV] = redis_service.url
    yield redis_service.url
    os.environ.pop(REDIS_URL_ENV, None)


@pytest.fixture(params=["fakeredis", "redis"])
def client(request: pytest.FixtureRequest, real_redis_url: str) -> Iterator[redis.Redis[bytes]]:
    if request.param == "fakeredis":
        yield fakeredis.FakeRedis()
        return
    real: redis.Redis[bytes] = redis.Redis.from_url(real_redis_url, socket_connect_timeout=5)
    yield real
    real.close()


@pytest.fixture
def prefix(client: redis.Redis[bytes]) -> Iterator[str]:
    """A key prefix of this test alone, removed afterwards."""
    p = f"td:rl:test:{uuid.uuid4().hex}"
    yield p
    keys = list(client.scan_iter(match=f"{p}:*"))
    if keys:
        client.delete(*keys)
