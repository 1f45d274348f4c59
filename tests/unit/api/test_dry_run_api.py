"""``POST /v1/jobs?dry_run=true``: the report, and nothing enqueued."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from teledispatch.api.app import create_app
from teledispatch.api.auth import hash_key, parse_hashed_keys
from teledispatch.config import Settings
from teledispatch.producer import submit
from tests.support import make_settings

from ..producer.test_dry_run import rows


@pytest.fixture
def cfg(db_url: str, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setattr(submit, "wake", lambda *a: None)
    return make_settings(db_url, prices={"*": 0.1})


def test_dry_run_reports_and_stores_nothing(cfg: Settings) -> None:
    client = TestClient(
        create_app(cfg, keys=parse_hashed_keys([hash_key("k")], "test")), headers={"X-API-Key": "k"}
    )
    body = {
        "account": "nx",
        "defaults": {"content": "Hi {name}"},
        "recipients": [
            {"phone": "+8613800138000", "name": "Ana"},
            {"phone": "+8613800138001"},
        ],
    }
    before = rows(cfg)
    resp = client.post("/v1/jobs?dry_run=true", json=body)
    assert resp.status_code == 200, resp.text
    report = resp.json()
    assert (report["recipients"], report["invalid"], report["suppressed"]) == (1, 1, 0)
    assert report["segments"] == {"gsm7": 1} and report["cost"] == pytest.approx(0.1)
    assert report["problems"][0]["index"] == 1 and report["problems"][0]["field"] == "name"
    assert rows(cfg) == before
    resp = client.post("/v1/jobs?dry_run=true", json={**body, "account": "nope"})
    assert resp.status_code == 422
    assert rows(cfg) == before
