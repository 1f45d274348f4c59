"""Per-key request rates on a real Redis: two API processes' limiters share one budget."""

from __future__ import annotations

import uuid

import redis

from teledispatch.api.ratelimit import Rate, RedisLimiter
from teledispatch.dev.redis import RedisService


def test_two_limiters_on_one_redis_share_a_keys_budget(redis_service: RedisService) -> None:
    first = RedisLimiter(redis.Redis.from_url(redis_service.url))
    second = RedisLimiter(redis.Redis.from_url(redis_service.url))
    key = f"test-{uuid.uuid4().hex}"
    # A low rate, so the run's own duration on a loaded machine cannot refill the budget.
    rate = Rate(per_s=0.01, burst=4)
    admitted = [lim.admit(key, rate) == 0.0 for lim in (first, second) * 3]
    assert admitted == [True] * 4 + [False] * 2
    wait = second.admit(key, rate)
    assert 0 < wait <= 100.0
    # The server's clock, with the key's expiry bounded by the time it is needed.
    ttl_ms = redis.Redis.from_url(redis_service.url).pttl(f"td:api:rate:{key}")
    assert 0 < ttl_ms <= 401_000
