"""The HTTP API over real HTTP: ``teledispatch api`` as a subprocess, a worker, the simulator,
a private redis-server, on SQLite and PostgreSQL."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from teledispatch.api.auth import API_KEYS_ENV, KeyRing, hash_key, load_api_keys
from teledispatch.cli.main import main
from teledispatch.config import ConfigError, load_settings
from teledispatch.db.engine import get_engine
from teledispatch.db.tables import messages_table
from tests.support import Stack, poll

pytestmark = pytest.mark.integration

TOML_KEY = "key-from-toml-3f9a"
ENV_KEY = "key-from-env-77c1"


@pytest.fixture
def api(make_stack: Callable[..., Stack]) -> Iterator[tuple[Stack, httpx.Client]]:
    stack = make_stack()
    config = stack.workdir / "teledispatch.toml"
    with config.open("a", encoding="utf-8") as fh:
        # No per-key rate here: these tests post bursts to check durability and idempotency
        # (the limits have their own unit and component tests).
        fh.write(f'\n[api]\nkeys = ["{hash_key(TOML_KEY)}"]\nrate_per_s = 0\n')
    _, base = stack.api(extra_env={API_KEYS_ENV: hash_key(ENV_KEY)})
    with httpx.Client(
        base_url=base, headers={"Authorization": f"Bearer {TOML_KEY}"}, timeout=30
    ) as client:
        yield stack, client


def _wait_done(client: httpx.Client, job_id: str, timeout: float = 90) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        body: dict[str, Any] = client.get(f"/v1/jobs/{job_id}").json()
        return body if body["done"] else None

    result: dict[str, Any] = poll(done, timeout, f"job {job_id} done via GET /v1/jobs")
    return result


def test_api_job_roundtrip(api: tuple[Stack, httpx.Client]) -> None:
    stack, client = api
    stack.worker(concurrency=2, beat=True, name="apiw")
    phones = [f"+861390000{i:04d}" for i in range(5)]
    job = {
        "account": "nxcloud",
        "recipients": [{"phone": p} for p in phones],
        "defaults": {"content": "hello"},
        "idempotency_key": "body-key",
    }
    first = client.post("/v1/jobs", json=job, headers={"Idempotency-Key": "header-key"})
    assert first.status_code == 201, first.text
    created = first.json()
    assert created["total"] == 5 and created["created"] is True

    # The header key won over the body's: reusing the header key returns the same job...
    again = client.post(
        "/v1/jobs", json={**job, "idempotency_key": "x"}, headers={"Idempotency-Key": "header-key"}
    )
    assert again.status_code == 200 and again.json() == {**created, "created": False}
    # ...and the body key was never recorded, so it makes a new job.
    other = client.post("/v1/jobs", json=job)
    assert other.status_code == 201 and other.json()["job_id"] != created["job_id"]

    status = _wait_done(client, created["job_id"])
    assert status["total"] == 5 and status["accepted"] == 5
    assert status["counts"] == {"sent": 5} and status["progress"] == 1.0
    assert status["eta"] is None
    _wait_done(client, other.json()["job_id"])

    # Paging by cursor returns every message once, in id order.
    seen: list[dict[str, Any]] = []
    cursor: str | None = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 2, "status": "sent"}
        if cursor:
            params["cursor"] = cursor
        page = client.get(f"/v1/jobs/{created['job_id']}/messages", params=params)
        assert page.status_code == 200, page.text
        body = page.json()
        seen += body["messages"]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
        assert pages < 10, "cursor paging does not end"
    assert pages == 3
    assert sorted(m["phone"] for m in seen) == sorted(phones)
    assert [m["id"] for m in seen] == sorted(m["id"] for m in seen)
    empty = client.get(f"/v1/jobs/{created['job_id']}/messages", params={"status": "failed"})
    assert empty.json() == {"messages": [], "next_cursor": None}

    by_phone = client.get("/v1/messages", params={"phone": phones[0][1:]})
    assert by_phone.status_code == 200
    assert {m["job_id"] for m in by_phone.json()} == {created["job_id"], other.json()["job_id"]}
    provider_id = seen[0]["provider_id"]
    assert provider_id
    by_pid = client.get("/v1/messages", params={"provider_id": provider_id})
    assert [m["id"] for m in by_pid.json()] == [seen[0]["id"]]

    metrics = client.get("/metrics")
    assert metrics.status_code == 200 and metrics.headers["content-type"].startswith("text/plain")
    assert 'teledispatch_messages{account="nxcloud",channel="nxcloud.sms",status="queued"} 0.0' in (
        metrics.text
    )
    assert (
        'teledispatch_oldest_due_message_age_seconds{account="nxcloud",channel="nxcloud.sms"} 0.0'
        in metrics.text
    )
    assert httpx.get(str(client.base_url) + "/metrics", timeout=10).status_code == 401

    assert client.get("/v1/jobs/nope").status_code == 404
    assert client.get("/v1/jobs/nope/messages").status_code == 404
    assert client.post("/v1/jobs/nope/cancel").status_code == 404


def test_api_cancel_scheduled_job(api: tuple[Stack, httpx.Client]) -> None:
    stack, client = api
    stack.worker(concurrency=2, name="apic")
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    posted = client.post(
        "/v1/jobs",
        json={
            "account": "nxcloud",
            "recipients": [{"phone": f"+14155550{i:03d}"} for i in range(3)],
            "defaults": {"content": "later"},
            "not_before": later,
        },
    )
    assert posted.status_code == 201, posted.text
    job_id = posted.json()["job_id"]
    accepted = poll(lambda: client.get(f"/v1/jobs/{job_id}").json()["accepted"] == 3, 60, "accept")
    assert accepted
    pending = client.get(f"/v1/jobs/{job_id}").json()
    assert pending["done"] is False and pending["progress"] == 0.0
    assert pending["eta"] is not None and pending["eta"] >= pending["created_at"]

    cancelled = client.post(f"/v1/jobs/{job_id}/cancel")
    assert cancelled.status_code == 200
    assert cancelled.json() == {"job_id": job_id, "cancelled": 3}
    final = client.get(f"/v1/jobs/{job_id}").json()
    assert final["done"] is True and final["cancelled"] is True
    assert final["counts"] == {"cancelled": 3}


def test_api_refuses_bad_input_and_bad_keys(api: tuple[Stack, httpx.Client]) -> None:
    stack, client = api
    bad = client.post(
        "/v1/jobs",
        json={
            "account": "nxcloud",
            "recipients": [{"phone": "+8613900000001"}, {"phone": "12"}, {"phone": "x"}],
            "defaults": {"content": "hi", "colour": "red"},
        },
    )
    assert bad.status_code == 422
    body = bad.json()
    problems = body["detail"]
    # The domain reports the unknown default once for the job and once per recipient.
    assert body["total"] == len(problems) == 6
    assert {(p["index"], p["field"]) for p in problems} == {
        (None, "defaults.colour"),
        (0, "colour"),
        (1, "colour"),
        (2, "colour"),
        (1, "phone"),
        (2, "phone"),
    }
    for p in problems:
        assert set(p) == {"loc", "index", "field", "value", "rule", "msg"}
        assert p["rule"] and p["msg"]
    by_where = {(p["index"], p["field"]): p for p in problems}
    assert by_where[(2, "phone")]["value"] == "x"
    assert by_where[(1, "phone")]["loc"] == ["body", "recipients", 1, "phone"]
    assert by_where[(None, "defaults.colour")]["loc"] == ["body", "defaults", "colour"]

    # Model-level errors (before the channel rules) use the same shape.
    shape = client.post("/v1/jobs", json={"account": "", "recipients": [], "extra": 1})
    assert shape.status_code == 422
    fields = {p["field"] for p in shape.json()["detail"]}
    assert {"account", "recipients", "extra"} <= fields

    unknown = client.post(
        "/v1/jobs", json={"account": "nope", "recipients": [{"phone": "+8613900000001"}]}
    )
    assert unknown.status_code == 422 and unknown.json()["detail"][0]["field"] == "account"

    job = {
        "account": "nxcloud",
        "recipients": [{"phone": "+8613900000009"}],
        "defaults": {"content": "a"},
    }
    assert client.post("/v1/jobs", json=job, headers={"Idempotency-Key": "k1"}).status_code == 201
    conflict = client.post(
        "/v1/jobs", json={**job, "defaults": {"content": "b"}}, headers={"Idempotency-Key": "k1"}
    )
    assert conflict.status_code == 409 and "k1" in conflict.json()["detail"]

    # A due message nobody claims (no worker runs in this test) ages in /metrics.
    now = time.time()
    with get_engine(stack.cfg.database_url).begin() as conn:
        conn.execute(
            messages_table.insert().values(
                id="stuck-0",
                job_id="stuck",
                seq=0,
                account="uspeedo",
                channel="uspeedo.sms",
                phone="+8613900000077",
                payload="{}",
                status="queued",
                due_at=now - 120,
                created_at=now - 120,
                updated_at=now - 120,
            )
        )
    text = client.get("/metrics").text
    line = next(
        ln
        for ln in text.splitlines()
        if ln.startswith("teledispatch_oldest_due_message_age_seconds") and "uspeedo" in ln
    )
    assert 120 <= float(line.rsplit(" ", 1)[1]) < 200, line
    assert 'account="uspeedo",channel="uspeedo.sms",status="queued"} 1.0' in text

    assert client.get("/v1/messages").status_code == 422
    assert client.get("/v1/messages", params={"phone": "1", "provider_id": "2"}).status_code == 422
    bad_status = client.get("/v1/jobs/x/messages", params={"status": "bogus"})
    assert bad_status.status_code == 422 and bad_status.json()["detail"][0]["field"] == "status"

    url = "/v1/messages?phone=8613900000009"
    assert client.get(url, headers={"Authorization": "Bearer wrong"}).status_code == 401
    bare = httpx.get(str(client.base_url) + url, timeout=10)
    assert bare.status_code == 401 and bare.headers["www-authenticate"] == "Bearer"
    assert httpx.get(str(client.base_url) + url, headers={"X-API-Key": ENV_KEY}).status_code == 200
    hashed = hash_key(TOML_KEY)
    assert client.get(url, headers={"Authorization": f"Bearer {hashed}"}).status_code == 401

    spec = httpx.get(str(client.base_url) + "/openapi.json", timeout=10)
    assert spec.status_code == 200
    paths = spec.json()["paths"]
    assert {
        "/v1/jobs",
        "/v1/jobs/{job_id}",
        "/v1/jobs/{job_id}/messages",
        "/v1/jobs/{job_id}/cancel",
        "/v1/messages",
    } <= set(paths)
    assert httpx.get(str(client.base_url) + "/docs", timeout=10).status_code == 200
    assert httpx.get(str(client.base_url) + "/readyz", timeout=10).status_code == 200


def test_api_keys_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["api", "hash-key", TOML_KEY]) == 0
    printed = capsys.readouterr().out.strip()
    assert printed == hash_key(TOML_KEY) and printed.startswith("sha256:")

    config = tmp_path / "teledispatch.toml"
    config.write_text(f'[api]\nkeys = ["{printed}"]\n')
    monkeypatch.setenv(API_KEYS_ENV, hash_key(ENV_KEY))
    ring = KeyRing(load_api_keys(load_settings(config)))
    assert len(ring) == 2
    assert ring.accepts(TOML_KEY) and ring.accepts(ENV_KEY)
    assert not ring.accepts(printed) and not ring.accepts("")

    # A raw key pasted by mistake is refused, and the error does not repeat it.
    config.write_text(f'[api]\nkeys = ["{printed}", "{TOML_KEY}"]\n')
    with pytest.raises(ConfigError) as refused:
        load_api_keys(load_settings(config))
    assert "entry 2" in str(refused.value) and TOML_KEY not in str(refused.value)


def test_concurrent_posts_are_each_durable_when_answered(api: tuple[Stack, httpx.Client]) -> None:
    """Requests that arrive together share commits (the API's Producer), yet each 201 still
    means stored: the row is in the database the moment the answer arrives."""
    from concurrent.futures import ThreadPoolExecutor

    stack, client = api
    engine = get_engine(stack.cfg.database_url)

    def post(i: int) -> tuple[int, str, bool]:
        body = {"account": "nxcloud", "recipients": [{"phone": f"+86139{i:08d}"}]}
        resp = client.post("/v1/jobs", json={**body, "defaults": {"content": f"code {i}"}})
        job_id = resp.json().get("job_id", "")
        with engine.connect() as conn:
            rows = conn.execute(
                sa.select(sa.func.count()).where(messages_table.c.job_id == job_id)
            ).scalar_one()
        return resp.status_code, job_id, rows == 1

    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(post, range(64)))
    assert [code for code, _, _ in results] == [201] * 64
    assert len({job_id for _, job_id, _ in results}) == 64
    assert all(stored for _, _, stored in results)
