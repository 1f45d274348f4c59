"""The console's JSON routes (job list, failures, accounts, retry) and its page, in process:
scoped by key like every /v1 route, answering from the database."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fakeredis
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from teledispatch import circuits
from teledispatch.api.app import create_app
from teledispatch.api.auth import ApiKey
from teledispatch.config import Settings, parse_config
from teledispatch.db.engine import get_engine
from teledispatch.db.tables import messages_table
from teledispatch.producer import submit
from teledispatch.rate_use import departures_key
from teledispatch.routes import parse_routes

ACCOUNTS = {
    "shop": {"channel": "nxcloud.sms", "base_url": "http://nx.test", "max_messages_per_second": 50},
    "bank": {"channel": "nxcloud.sms", "base_url": "http://nx.test"},
}
ROUTES = {
    "main": {"86": ["shop", "bank"], "*": ["bank"]},
    "spare": {"accounts": ["bank"]},
}
m = messages_table.c


def _key(name: str, accounts: list[str] | None) -> ApiKey:
    scope = None if accounts is None else frozenset(accounts)
    return ApiKey(name, hashlib.sha256(name.encode()).digest(), scope, own_idempotency=True)


@pytest.fixture
def fake_redis(monkeypatch: pytest.MonkeyPatch) -> fakeredis.FakeRedis:
    client = fakeredis.FakeRedis()
    monkeypatch.setattr(circuits, "redis_client", lambda url: client)
    return client


@pytest.fixture
def cfg(tmp_path: Path) -> Settings:
    return Settings(
        accounts=parse_config({"accounts": ACCOUNTS}),
        database_url=f"sqlite:///{tmp_path / 'api.db'}",
        redis_url="redis://fake",
        routes=parse_routes(ROUTES, dict.fromkeys(ACCOUNTS, "nxcloud.sms"), []),
    )


@pytest.fixture
def client(
    cfg: Settings, fake_redis: fakeredis.FakeRedis, monkeypatch: pytest.MonkeyPatch
) -> Iterator[TestClient]:
    monkeypatch.setattr(submit, "wake", lambda *a: None)
    keys = [_key("shop-app", ["shop"]), _key("ops", None), _key("prometheus", [])]
    main_app = hashlib.sha256(b"main-app").digest()
    keys.append(ApiKey("main-app", main_app, frozenset(), routes=frozenset({"main"})))
    with TestClient(create_app(cfg, keys=keys), raise_server_exceptions=False) as c:
        yield c


def _as(name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {name}"}


def _job(client: TestClient, account: str, n: int, **extra: Any) -> str:
    body = {
        "account": account,
        "recipients": [{"phone": f"+86138001380{i:02d}"} for i in range(n)],
        "defaults": {"content": "hi"},
        "not_before": "2099-01-01T00:00:00Z",
        **extra,
    }
    made = client.post("/v1/jobs", json=body, headers=_as("ops"))
    assert made.status_code == 201, made.text
    job_id: str = made.json()["job_id"]
    return job_id


def _fail(cfg: Settings, message_id: str, code: str, text: str) -> None:
    with get_engine(cfg.database_url).begin() as conn:
        conn.execute(
            sa.update(messages_table)
            .where(m.id == message_id)
            .values(status="failed", error_code=code, error_text=text)
        )


def test_jobs_list_filters_and_pages_within_the_keys_scope(client: TestClient) -> None:
    shop = [_job(client, "shop", 2, priority="high"), _job(client, "shop", 1)]
    bank = _job(client, "bank", 3)
    listed = client.get("/v1/jobs", headers=_as("ops")).json()
    assert [j["job_id"] for j in listed["jobs"]] == [bank, shop[1], shop[0]]
    assert listed["jobs"][0]["counts"] == {"queued": 3} and listed["jobs"][0]["progress"] == 0
    mine = client.get("/v1/jobs", headers=_as("shop-app")).json()["jobs"]
    assert {j["job_id"] for j in mine} == set(shop)
    assert client.get("/v1/jobs?account=bank", headers=_as("shop-app")).json()["jobs"] == []
    high = client.get("/v1/jobs?priority=high", headers=_as("ops")).json()["jobs"]
    assert [j["job_id"] for j in high] == [shop[0]]
    first = client.get("/v1/jobs?limit=2", headers=_as("ops")).json()
    assert first["next_cursor"] == shop[1]
    rest = client.get(f"/v1/jobs?limit=2&cursor={first['next_cursor']}", headers=_as("ops"))
    assert [j["job_id"] for j in rest.json()["jobs"]] == [shop[0]]
    client.post(f"/v1/jobs/{bank}/cancel", headers=_as("ops"))
    done = client.get("/v1/jobs?status=done", headers=_as("ops")).json()["jobs"]
    assert [(j["job_id"], j["cancelled"], j["done"]) for j in done] == [(bank, True, True)]
    assert len(client.get("/v1/jobs?status=active", headers=_as("ops")).json()["jobs"]) == 2
    future = client.get("/v1/jobs?created_from=2099-01-01T00:00:00Z", headers=_as("ops"))
    assert future.json()["jobs"] == []
    naive = client.get("/v1/jobs?created_to=2026-01-01T00:00", headers=_as("ops"))
    assert naive.status_code == 422 and "time zone" in naive.text


def test_failures_are_grouped_by_code_with_examples(client: TestClient, cfg: Settings) -> None:
    job = _job(client, "shop", 4)
    _fail(cfg, f"{job}-0", "E1", "bad number")
    _fail(cfg, f"{job}-1", "E1", "bad number")
    _fail(cfg, f"{job}-2", "E9", "balance")
    groups = client.get(f"/v1/jobs/{job}/failures", headers=_as("shop-app")).json()["groups"]
    assert [(g["status"], g["error_code"], g["count"]) for g in groups] == [
        ("failed", "E1", 2),
        ("failed", "E9", 1),
    ]
    assert {e["id"] for e in groups[0]["examples"]} == {f"{job}-0", f"{job}-1"}
    other = _job(client, "bank", 1)
    assert client.get(f"/v1/jobs/{other}/failures", headers=_as("shop-app")).status_code == 404


def test_retry_is_scoped_like_cancel(client: TestClient, cfg: Settings) -> None:
    job = _job(client, "bank", 2)
    _fail(cfg, f"{job}-0", "E1", "refused")
    assert client.post(f"/v1/jobs/{job}/retry", headers=_as("shop-app")).status_code == 404
    done = client.post(f"/v1/jobs/{job}/retry", headers=_as("ops"))
    assert done.json() == {"job_id": job, "retried": 1, "skipped": []}
    bad = client.post(f"/v1/jobs/{job}/retry", json={"statuses": ["sent"]}, headers=_as("ops"))
    assert bad.status_code == 422


def test_accounts_show_circuit_rate_backlog_and_waiting_errors(
    client: TestClient, cfg: Settings, fake_redis: fakeredis.FakeRedis
) -> None:
    job = _job(client, "shop", 3)
    with get_engine(cfg.database_url).begin() as conn:
        conn.execute(
            sa.update(messages_table)
            .where(m.id == f"{job}-0")
            .values(due_at=0, error_code="503", error_text="Service Unavailable")
        )
    fake_redis.hset(
        circuits.circuit_key("shop"),
        mapping={"state": "open", "reason": "[503] down", "opened_ms": 1, "next_probe_ms": 2},
    )
    seconds, micros = fake_redis.time()
    now_us = seconds * 1_000_000 + micros
    fake_redis.zadd(
        departures_key("shop"), {f"{now_us}:7:t1": now_us, f"{now_us - 5}:3:t2": now_us - 5}
    )
    fake_redis.zadd(departures_key("shop"), {f"{now_us - 9_000_000}:99:old": now_us - 9_000_000})
    shown = {a["account"]: a for a in client.get("/v1/accounts", headers=_as("ops")).json()}
    shop = shown["shop"]
    assert shop["circuit"]["state"] == "open" and shop["circuit"]["reason"] == "[503] down"
    assert shop["in_use"] == {"requests_per_second": 2, "messages_per_second": 10}
    assert shop["limits"]["messages_per_second"] == 50
    assert shop["backlog"]["queued"] == 3 and shop["oldest_due_age_s"] > 1e9
    assert [(e["error_code"], e["count"]) for e in shop["waiting_errors"]] == [("503", 1)]
    assert shown["bank"]["circuit"]["state"] == "closed"
    scoped = client.get("/v1/accounts", headers=_as("shop-app")).json()
    assert [a["account"] for a in scoped] == ["shop"]


def test_the_console_page_and_its_script_ship_with_the_package(client: TestClient) -> None:
    page = client.get("/console")
    assert (
        page.status_code == 200 and "script-src 'self'" in page.headers["content-security-policy"]
    )
    assert '<option value="high">high</option>' in page.text and "$" not in page.text
    assert "/console/static/console.js" in page.text and "http" not in page.text.split("<body")[1]
    script = client.get("/console/static/console.js")
    assert script.status_code == 200 and "sessionStorage" in script.text
    assert client.get("/console/static/../app.py").status_code == 404
    assert client.get("/console/static/nope.js").status_code == 404


def test_a_key_scoped_to_no_account_reads_metrics_and_nothing_else(client: TestClient) -> None:
    job = _job(client, "shop", 1)
    assert client.get("/metrics", headers=_as("prometheus")).status_code == 200
    assert client.get("/v1/jobs", headers=_as("prometheus")).json()["jobs"] == []
    assert client.get("/v1/accounts", headers=_as("prometheus")).json() == []
    assert client.get(f"/v1/jobs/{job}", headers=_as("prometheus")).status_code == 404


def test_the_views_answer_before_any_job_was_stored(client: TestClient) -> None:
    # Found by schemathesis: the first request of a fresh database was a 500 (no tables yet).
    listed = client.get("/v1/jobs", headers=_as("ops"))
    assert (listed.status_code, listed.json()) == (200, {"jobs": [], "next_cursor": None})
    accounts = client.get("/v1/accounts", headers=_as("ops"))
    assert accounts.status_code == 200


def _members(route: dict[str, Any]) -> dict[str, tuple[list[tuple[str, str]], str | None]]:
    return {
        d["prefix"]: (
            [(x["account"], x["circuit"]["state"]) for x in d["members"]],
            d["first_choice"],
        )
        for d in route["destinations"]
    }


def test_routes_show_members_in_order_and_the_first_closed_one(
    client: TestClient, fake_redis: fakeredis.FakeRedis
) -> None:
    shown = client.get("/v1/routes", headers=_as("ops")).json()
    assert [r["route"] for r in shown] == ["main", "spare"]
    assert _members(shown[0]) == {
        "86": ([("shop", "closed"), ("bank", "closed")], "shop"),
        "*": ([("bank", "closed")], "bank"),
    }
    fake_redis.hset(
        circuits.circuit_key("shop"),
        mapping={"state": "open", "reason": "[503] down", "opened_ms": 1, "next_probe_ms": 2},
    )
    main = client.get("/v1/routes", headers=_as("main-app")).json()
    assert [r["route"] for r in main] == ["main"]
    assert _members(main[0])["86"] == ([("shop", "open"), ("bank", "closed")], "bank")
    assert main[0]["destinations"][0]["members"][0]["circuit"]["reason"] == "[503] down"
    fake_redis.hset(circuits.circuit_key("bank"), mapping={"state": "half_open"})
    spent = client.get("/v1/routes", headers=_as("ops")).json()
    assert _members(spent[0])["86"][1] is None and _members(spent[1])["*"][1] is None
    # An account-scoped key without routes uses none; nor does a key scoped to no account.
    assert client.get("/v1/routes", headers=_as("shop-app")).json() == []
    assert client.get("/v1/routes", headers=_as("prometheus")).json() == []
