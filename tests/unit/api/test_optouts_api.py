"""``/v1/optouts``: a key works on its accounts' lists only, the global list needs a key
without scope, bad numbers change nothing, and an opted-out recipient enqueued over the API
is ``suppressed``."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from teledispatch.api.app import create_app
from teledispatch.api.auth import ApiKey
from teledispatch.config import Settings, parse_config
from teledispatch.producer import submit

ACCOUNTS = {
    "shop": {"channel": "nxcloud.sms", "base_url": "http://127.0.0.1:9"},
    "bank": {"channel": "nxcloud.sms", "base_url": "http://127.0.0.1:9"},
}
CN = "+8613800138000"


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
    keys = [_key("shop-app", ["shop"]), _key("ops", None)]
    with TestClient(create_app(cfg, keys=keys), raise_server_exceptions=False) as c:
        yield c


def h(name: str) -> dict[str, str]:
    return {"X-API-Key": name}


def test_a_scoped_key_works_its_own_list_only(client: TestClient) -> None:
    ok = client.post("/v1/optouts", json={"phones": [CN], "account": "shop"}, headers=h("shop-app"))
    assert ok.status_code == 200 and ok.json()["changed"] == 1
    listed = client.get("/v1/optouts?account=shop", headers=h("shop-app")).json()
    assert [e["phone"] for e in listed["phones"]] == [CN]
    other = client.post(
        "/v1/optouts", json={"phones": [CN], "account": "bank"}, headers=h("shop-app")
    )
    assert other.status_code == 422
    assert client.get("/v1/optouts?account=bank", headers=h("shop-app")).status_code == 422
    glob = client.post("/v1/optouts", json={"phones": [CN]}, headers=h("shop-app"))
    assert glob.status_code == 403
    assert client.get("/v1/optouts", headers=h("shop-app")).status_code == 403


def test_the_global_list_with_an_unscoped_key_and_remove(client: TestClient) -> None:
    assert client.post("/v1/optouts", json={"phones": [CN]}, headers=h("ops")).status_code == 200
    assert [e["phone"] for e in client.get("/v1/optouts", headers=h("ops")).json()["phones"]] == [
        CN
    ]
    gone = client.post("/v1/optouts/remove", json={"phones": [CN]}, headers=h("ops"))
    assert gone.json()["changed"] == 1
    assert client.get("/v1/optouts", headers=h("ops")).json()["phones"] == []


def test_bad_numbers_change_nothing(client: TestClient) -> None:
    bad = client.post(
        "/v1/optouts", json={"phones": [CN, "12"], "account": "shop"}, headers=h("shop-app")
    )
    assert bad.status_code == 422 and "phones[1]" in bad.text
    assert client.get("/v1/optouts?account=shop", headers=h("shop-app")).json()["phones"] == []


def test_an_opted_out_recipient_is_suppressed_at_enqueue(client: TestClient) -> None:
    client.post("/v1/optouts", json={"phones": [CN]}, headers=h("ops"))
    job = {"account": "shop", "recipients": [{"phone": CN}], "defaults": {"content": "hi"}}
    dry = client.post("/v1/jobs?dry_run=true", json=job, headers=h("shop-app")).json()
    assert dry["suppressed"] == 1
    made = client.post("/v1/jobs", json=job, headers=h("shop-app"))
    assert made.status_code == 201, made.text
    view = client.get(f"/v1/jobs/{made.json()['job_id']}", headers=h("shop-app")).json()
    assert view["counts"] == {"suppressed": 1} and view["done"]
