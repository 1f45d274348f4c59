"""API keys and routes: a key scoped to accounts may use a route only if it lists it; a key
whose scope covers every account may use every route."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from teledispatch.api.app import create_app
from teledispatch.api.auth import ApiKey, parse_keys
from teledispatch.config import Settings, parse_config, parse_route_tables
from teledispatch.producer import routed, submit

DATA: dict[str, Any] = {
    "accounts": {
        "shop": {"channel": "nxcloud.sms", "base_url": "http://127.0.0.1:9"},
        "bank": {"channel": "nxcloud.sms", "base_url": "http://127.0.0.1:9"},
    },
    "routes": {"sms": {"accounts": ["shop", "bank"]}},
}


def _key(name: str, accounts: list[str] | None, routes: list[str] | None = None) -> ApiKey:
    return ApiKey(
        name,
        hashlib.sha256(name.encode()).digest(),
        None if accounts is None else frozenset(accounts),
        own_idempotency=True,
        routes=None if routes is None else frozenset(routes),
    )


@pytest.fixture
def client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    monkeypatch.setattr(submit, "wake", lambda *a: None)
    monkeypatch.setattr(routed, "read_circuit", lambda url, account: None)
    accounts = parse_config(DATA)
    cfg = Settings(
        accounts=accounts,
        routes=parse_route_tables(DATA, accounts),
        database_url=f"sqlite:///{tmp_path / 'api.db'}",
        redis_url="redis://127.0.0.1:9/0",
    )
    keys = [_key("shop-app", ["shop"]), _key("router", ["shop"], ["sms"]), _key("ops", None)]
    with TestClient(create_app(cfg, keys=keys), raise_server_exceptions=False) as c:
        yield c


def post(client: TestClient, key: str, route: str) -> Any:
    job = {
        "route": route,
        "recipients": [{"phone": "+8613800138000"}],
        "defaults": {"content": "hi"},
    }
    return client.post("/v1/jobs", json=job, headers={"X-API-Key": key})


def test_a_route_needs_to_be_in_the_keys_scope(client: TestClient) -> None:
    refused = post(client, "shop-app", "sms")
    assert refused.status_code == 422
    assert refused.json()["detail"][0]["rule"] == "is not a route this API key may use"
    made = post(client, "router", "sms")
    assert made.status_code == 201, made.text
    job_id = made.json()["job_id"]
    view = client.get(f"/v1/jobs/{job_id}", headers={"X-API-Key": "router"}).json()
    assert view["route"] == "sms" and view["account"] == "shop"
    assert client.get(f"/v1/jobs/{job_id}", headers={"X-API-Key": "shop-app"}).status_code == 404
    assert post(client, "ops", "sms").status_code == 201
    assert post(client, "ops", "nope").status_code == 422


def test_account_and_route_together_are_refused(client: TestClient) -> None:
    job = {"account": "shop", "route": "sms", "recipients": [{"phone": "+8613800138000"}]}
    answer = client.post("/v1/jobs", json=job, headers={"X-API-Key": "ops"})
    assert answer.status_code == 422 and "exactly one" in answer.text


def test_keys_take_a_routes_list() -> None:
    digest = "sha256:" + "0" * 64
    [key] = parse_keys([{"name": "r", "hash": digest, "accounts": [], "routes": ["sms"]}], "t")
    assert key.may_use_route("sms") and not key.may_use_route("other")
    assert not key.may_use("shop")


def test_a_routed_dry_run_reports_like_an_accounts(client: TestClient) -> None:
    job = {
        "route": "sms",
        "recipients": [{"phone": "+8613800138000", "name": "Ann"}, {"phone": "12", "name": "Bo"}],
        "defaults": {"content": "Hi {name}"},
    }
    answer = client.post("/v1/jobs?dry_run=true", json=job, headers={"X-API-Key": "router"})
    assert answer.status_code == 200, answer.text
    report = answer.json()
    assert (report["route"], report["account"]) == ("sms", "shop")
    assert (report["recipients"], report["invalid"], report["suppressed"]) == (1, 1, 0)
    assert report["segments"] == {"gsm7": 1}
    assert [p["index"] for p in report["problems"]] == [1]
