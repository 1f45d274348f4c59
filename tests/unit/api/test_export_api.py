"""``GET /v1/jobs/{id}/messages.csv``: the CLI export's rows over HTTP, scoped like every
job route (another tenant's job is a 404)."""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from teledispatch import exports
from teledispatch.api.app import create_app
from teledispatch.api.auth import ApiKey
from teledispatch.config import Settings, parse_config
from teledispatch.db.engine import get_engine
from teledispatch.producer import submit

ACCOUNTS = {
    "shop": {"channel": "nxcloud.sms", "base_url": "http://127.0.0.1:9"},
    "bank": {"channel": "nxcloud.sms", "base_url": "http://127.0.0.1:9"},
}


def _key(name: str, accounts: list[str]) -> ApiKey:
    return ApiKey(name, hashlib.sha256(name.encode()).digest(), frozenset(accounts), True)


@pytest.fixture
def cfg(tmp_path: Path) -> Settings:
    return Settings(
        accounts=parse_config({"accounts": ACCOUNTS}),
        database_url=f"sqlite:///{tmp_path / 'api.db'}",
        redis_url="redis://127.0.0.1:9/0",
    )


@pytest.fixture
def client(cfg: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    monkeypatch.setattr(submit, "wake", lambda *a: None)
    keys = [_key("shop-app", ["shop"]), _key("bank-app", ["bank"])]
    with TestClient(create_app(cfg, keys=keys), raise_server_exceptions=False) as c:
        yield c


def test_the_csv_is_the_cli_export_and_other_tenants_get_404(
    client: TestClient, cfg: Settings
) -> None:
    job = {
        "account": "shop",
        "recipients": [{"phone": f"+8613800138{i:03d}", "ext": str(i)} for i in range(5)],
        "defaults": {"content": "你好"},
        "not_before": "2099-01-01T00:00:00Z",
    }
    made = client.post("/v1/jobs", json=job, headers={"X-API-Key": "shop-app"})
    assert made.status_code == 201, made.text
    job_id = made.json()["job_id"]
    path = f"/v1/jobs/{job_id}/messages.csv"

    answer = client.get(path, headers={"X-API-Key": "shop-app"})
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/csv")
    cli = "".join(exports.csv_lines(exports.rows(get_engine(cfg.database_url), job_id)))
    assert answer.text == cli
    table = list(csv.DictReader(io.StringIO(answer.text)))
    assert [r["phone"] for r in table] == [f"+8613800138{i:03d}" for i in range(5)]
    first = table[0]
    assert (first["status"], first["encoding"], first["segments"]) == ("queued", "ucs2", "1")
    assert '"ext": "0"' in first["fields"]

    assert client.get(path, headers={"X-API-Key": "bank-app"}).status_code == 404
    assert client.get(path, headers={}).status_code == 401
    missing = client.get("/v1/jobs/nope/messages.csv", headers={"X-API-Key": "shop-app"})
    assert missing.status_code == 404
