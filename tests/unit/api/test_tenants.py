"""API keys as tenants: each key sees, cancels and enqueues on its own accounts only."""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from teledispatch.api.app import create_app
from teledispatch.api.auth import API_KEYS_ENV, ApiKey, hash_key
from teledispatch.config import Settings, parse_config
from teledispatch.producer import submit

ACCOUNTS = {
    "shop": {"channel": "nxcloud.sms", "base_url": "http://127.0.0.1:9"},
    "bank": {"channel": "nxcloud.sms", "base_url": "http://127.0.0.1:9"},
}


def _key(name: str, accounts: list[str] | None) -> ApiKey:
    scope = None if accounts is None else frozenset(accounts)
    return ApiKey(name, hashlib.sha256(name.encode()).digest(), scope, own_idempotency=True)


@pytest.fixture
def client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    monkeypatch.setattr(submit, "wake", lambda *a: None)
    cfg = Settings(
        accounts=parse_config({"accounts": ACCOUNTS}),
        database_url=f"sqlite:///{tmp_path / 'api.db'}",
        redis_url="redis://127.0.0.1:9/0",
    )
    keys = [_key("shop-app", ["shop"]), _key("bank-app", ["bank"]), _key("ops", None)]
    with TestClient(create_app(cfg, keys=keys), raise_server_exceptions=False) as c:
        yield c


def as_key(name: str) -> dict[str, str]:
    return {"X-API-Key": name}


def post(client: TestClient, key: str, account: str, **extra: Any) -> Any:
    job: dict[str, Any] = {"account": account, "recipients": [{"phone": "+8613800138000"}]}
    job["defaults"] = {"content": "hi"}
    return client.post("/v1/jobs", json={**job, **extra}, headers=as_key(key))


def test_a_key_sees_and_cancels_only_jobs_on_its_accounts(client: TestClient) -> None:
    made = post(client, "shop-app", "shop", not_before="2099-01-01T00:00:00Z")
    assert made.status_code == 201, made.text
    job_id = made.json()["job_id"]
    for path in (f"/v1/jobs/{job_id}", f"/v1/jobs/{job_id}/messages"):
        assert client.get(path, headers=as_key("bank-app")).status_code == 404
        assert client.get(path, headers=as_key("shop-app")).status_code == 200
        assert client.get(path, headers=as_key("ops")).status_code == 200
    refused = client.post(f"/v1/jobs/{job_id}/cancel", headers=as_key("bank-app"))
    assert refused.status_code == 404
    assert client.get(f"/v1/jobs/{job_id}", headers=as_key("shop-app")).json()["cancelled"] is False
    lookup = {"phone": "+8613800138000"}
    assert client.get("/v1/messages", params=lookup, headers=as_key("bank-app")).json() == []
    assert len(client.get("/v1/messages", params=lookup, headers=as_key("shop-app")).json()) == 1
    done = client.post(f"/v1/jobs/{job_id}/cancel", headers=as_key("shop-app"))
    assert done.status_code == 200 and done.json()["cancelled"] == 1


def test_unknown_or_foreign_account_is_the_same_422_naming_no_other(client: TestClient) -> None:
    foreign = post(client, "shop-app", "bank")
    unknown = post(client, "shop-app", "nope")
    assert foreign.status_code == unknown.status_code == 422
    assert foreign.json()["detail"][0]["rule"] == unknown.json()["detail"][0]["rule"]
    for answer in (foreign, unknown):
        assert "shop" not in answer.text.replace('"shop-app"', "")
        assert "teledispatch.toml" not in answer.text and "<defaults>" not in answer.text


def test_idempotency_keys_are_per_api_key(client: TestClient) -> None:
    first = post(client, "ops", "shop", idempotency_key="order-1")
    again = post(client, "ops", "shop", idempotency_key="order-1")
    other = post(client, "shop-app", "shop", idempotency_key="order-1")
    assert first.status_code == 201 and again.status_code == 200
    assert again.json()["job_id"] == first.json()["job_id"]
    assert other.status_code == 201 and other.json()["job_id"] != first.json()["job_id"]


def test_log_names_the_key_never_the_key_itself(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="teledispatch.api"):
        client.get("/v1/jobs/none", headers={"Authorization": "Bearer shop-app"})
    lines = [r.getMessage() for r in caplog.records if "by key" in r.getMessage()]
    assert lines == ["GET /v1/jobs/none by key shop-app"]


def test_keys_are_reloaded_when_the_config_file_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(API_KEYS_ENV, raising=False)
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'api.db'}")
    path = tmp_path / "teledispatch.toml"

    def write(*entries: str) -> None:
        path.write_text(f"[api]\nkeys = [{', '.join(entries)}]\n", encoding="utf-8")

    first = f'{{name = "a", hash = "{hash_key("key-a")}", accounts = ["shop"]}}'
    second = f'{{name = "b", hash = "{hash_key("key-b")}"}}'
    write(first)
    monkeypatch.setenv("TELEDISPATCH_CONFIG", str(path))
    from teledispatch.config import load_settings

    app = create_app(load_settings(path))
    with TestClient(app, raise_server_exceptions=False) as c:
        assert c.get("/v1/jobs/x", headers=as_key("key-a")).status_code == 404
        assert c.get("/v1/jobs/x", headers=as_key("key-b")).status_code == 401
        write(second)  # a revoked and an added key, no restart
        os.utime(path, ns=(1, 2_000_000_000_000_000_000))
        assert c.get("/v1/jobs/x", headers=as_key("key-a")).status_code == 401
        assert c.get("/v1/jobs/x", headers=as_key("key-b")).status_code == 404
        path.write_text("[api]\nkeys = [broken\n", encoding="utf-8")  # half-edited: keep b
        assert c.get("/v1/jobs/x", headers=as_key("key-b")).status_code == 404
