"""Per-key request rates: the GCRA of ``key_rate.lua`` on a passed clock, and the 429 it gives."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import fakeredis
import pytest
import redis
from fastapi.testclient import TestClient

from teledispatch.api.app import create_app
from teledispatch.api.auth import ApiKey, hash_key, parse_keys
from teledispatch.api.ratelimit import Rate, RateLimited, RedisLimiter
from teledispatch.config import ConfigError, Settings, load_settings

T0 = 1_700_000_000.0


@pytest.fixture
def limiter() -> RedisLimiter:
    return RedisLimiter(fakeredis.FakeRedis())


def test_a_burst_is_admitted_then_one_request_per_interval(limiter: RedisLimiter) -> None:
    rate = Rate(per_s=2.0, burst=3)
    assert [limiter.admit("k", rate, now_s=T0) for _ in range(3)] == [0.0, 0.0, 0.0]
    wait = limiter.admit("k", rate, now_s=T0)
    assert wait == pytest.approx(0.5)
    assert limiter.admit("k", rate, now_s=T0 + 0.49) == pytest.approx(0.01)
    assert limiter.admit("k", rate, now_s=T0 + 0.5) == 0.0
    assert limiter.admit("k", rate, now_s=T0 + 0.5) > 0
    # A quiet spell refills the whole burst, never more.
    assert [limiter.admit("k", rate, now_s=T0 + 60) for _ in range(4)][3] > 0


def test_keys_have_separate_budgets_and_zero_means_unlimited(limiter: RedisLimiter) -> None:
    rate = Rate(per_s=1.0, burst=1)
    assert limiter.admit("a", rate, now_s=T0) == 0.0
    assert limiter.admit("a", rate, now_s=T0) > 0
    assert limiter.admit("b", rate, now_s=T0) == 0.0
    assert all(limiter.admit("c", Rate(0, 1), now_s=T0) == 0.0 for _ in range(50))


def test_retry_after_is_whole_seconds_at_least_one() -> None:
    assert RateLimited(0.001).header == "1"
    assert RateLimited(1.2).header == "2"
    assert RateLimited(3.0).header == "3"


class _DownRedis:
    """A client whose every script call fails as an unreachable server's would."""

    def register_script(self, _: str) -> Any:
        def run(**_: Any) -> Any:
            raise redis.ConnectionError("connection refused")

        return run


def test_an_unreachable_redis_admits() -> None:
    broken = RedisLimiter(_DownRedis())  # type: ignore[arg-type]
    assert broken.admit("k", Rate(1.0, 1), now_s=T0) == 0.0
    assert broken.admit("k", Rate(1.0, 1), now_s=T0) == 0.0


def test_per_key_and_default_limits_are_read_and_checked(tmp_path: Path) -> None:
    keys = parse_keys(
        [{"name": "bulk", "hash": hash_key("x"), "rate_per_s": 5, "burst": 10}], "test"
    )
    assert (keys[0].rate_per_s, keys[0].burst) == (5.0, 10)
    with pytest.raises(ConfigError, match="burst must be a positive whole number"):
        parse_keys([{"name": "b", "hash": hash_key("x"), "burst": 0}], "test")
    with pytest.raises(ConfigError, match="rate_per_s must be a number"):
        parse_keys([{"name": "b", "hash": hash_key("x"), "rate_per_s": "fast"}], "test")
    path = tmp_path / "td.toml"
    path.write_text("[api]\nrate_per_s = 7.5\nburst = 3\n")
    cfg = load_settings(path)
    assert (cfg.api_rate_per_s, cfg.api_burst) == (7.5, 3)
    path.write_text("[api]\nrate_per_s = -1\n")
    with pytest.raises(ConfigError, match="rate_per_s"):
        load_settings(path)


def _key(name: str, **limits: float) -> ApiKey:
    digest = hashlib.sha256(name.encode()).digest()
    return ApiKey(name, digest, None, own_idempotency=True, **limits)  # type: ignore[arg-type]


def test_the_api_answers_429_with_retry_after_per_key(tmp_path: Path) -> None:
    cfg = Settings(database_url=f"sqlite:///{tmp_path / 'api.db'}", api_rate_per_s=1, api_burst=2)
    keys = [_key("greedy"), _key("calm"), _key("bulk", rate_per_s=100.0, burst=50)]
    app = create_app(cfg, keys=keys, limiter=RedisLimiter(fakeredis.FakeRedis()))
    with TestClient(app, raise_server_exceptions=False) as client:
        codes = [
            client.get("/v1/jobs/none", headers={"X-API-Key": "greedy"}).status_code
            for _ in range(3)
        ]
        assert codes == [404, 404, 429]
        refused = client.get("/v1/messages?phone=%2B8613800138000", headers={"X-API-Key": "greedy"})
        assert refused.status_code == 429
        assert int(refused.headers["Retry-After"]) >= 1
        assert refused.json()["retry_after_s"] > 0 and "rate" in refused.json()["detail"]
        # Another key is not starved by the greedy one; a key's own limit overrides [api].
        assert client.get("/v1/jobs/none", headers={"X-API-Key": "calm"}).status_code == 404
        bulk = [client.get("/v1/jobs/none", headers={"X-API-Key": "bulk"}) for _ in range(10)]
        assert {r.status_code for r in bulk} == {404}
        # Unauthenticated requests are refused before they spend anyone's budget.
        assert client.get("/v1/jobs/none").status_code == 401


def test_every_authenticated_route_documents_429() -> None:
    schema = create_app(Settings(), keys=[]).openapi()
    for path, ops in schema["paths"].items():
        for method, op in ops.items():
            if path.startswith("/v1/"):
                assert "429" in op["responses"], (method, path)
                assert "Retry-After" in op["responses"]["429"]["headers"]
