"""A job's ``callback_url`` is checked at enqueue by the delivery rules: 422, nothing stored."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from teledispatch.api.app import create_app
from teledispatch.api.auth import ApiKey
from teledispatch.config import Settings, parse_config
from teledispatch.db.engine import get_engine
from teledispatch.db.tables import create_schema, jobs_table
from teledispatch.producer import submit

KEY = ApiKey("app", hashlib.sha256(b"app").digest(), None, own_idempotency=True)


@pytest.fixture
def cfg(tmp_path: Path) -> Settings:
    accounts = {"shop": {"channel": "nxcloud.sms", "base_url": "http://127.0.0.1:9"}}
    return Settings(
        accounts=parse_config({"accounts": accounts}),
        database_url=f"sqlite:///{tmp_path / 'api.db'}",
        redis_url="redis://127.0.0.1:9/0",
    )


@pytest.fixture
def client(cfg: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    monkeypatch.setattr(submit, "wake", lambda *a: None)
    with TestClient(create_app(cfg, keys=[KEY]), raise_server_exceptions=False) as c:
        yield c


def _jobs(cfg: Settings) -> int:
    engine = get_engine(cfg.database_url)
    create_schema(engine)
    with engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(jobs_table)).scalar_one())


@pytest.mark.parametrize("dry_run", ["false", "true"])
def test_a_private_callback_url_is_a_422_naming_field_value_and_rule(
    client: TestClient, cfg: Settings, dry_run: str
) -> None:
    job = {
        "account": "shop",
        "recipients": [{"phone": "+8613800138000"}],
        "defaults": {"content": "hi"},
        "callback_url": "https://192.168.1.20/hook",
    }
    answer = client.post(f"/v1/jobs?dry_run={dry_run}", json=job, headers={"X-API-Key": "app"})
    assert answer.status_code == 422, answer.text
    (problem,) = answer.json()["detail"]
    assert problem["field"] == "callback_url"
    assert problem["value"] == "https://192.168.1.20/hook"
    assert problem["rule"] == "non-public address 192.168.1.20 is not allowed"
    assert _jobs(cfg) == 0


def test_a_public_https_callback_url_is_stored(client: TestClient, cfg: Settings) -> None:
    job = {
        "account": "shop",
        "recipients": [{"phone": "+8613800138000"}],
        "defaults": {"content": "hi"},
        "callback_url": "https://apps.example/hook",
    }
    answer = client.post("/v1/jobs", json=job, headers={"X-API-Key": "app"})
    assert answer.status_code == 201, answer.text
    assert _jobs(cfg) == 1
