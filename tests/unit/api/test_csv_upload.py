"""``POST /v1/jobs/csv``: a CSV body streamed into the CLI's reader and ``enqueue_stream``."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from teledispatch.api.app import create_app
from teledispatch.api.auth import hash_key, parse_hashed_keys
from teledispatch.config import Settings
from teledispatch.producer import submit
from tests.support import make_settings

from ..producer.test_dry_run import rows

CSV = "text/csv"
#: The CSV's ``name`` column fills the template.
URL = "/v1/jobs/csv?account=nx&content=Hi+{name}"


@pytest.fixture
def cfg(db_url: str, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setattr(submit, "wake", lambda *a: None)
    return make_settings(db_url)


def client_for(cfg: Settings) -> TestClient:
    keys = parse_hashed_keys([hash_key("k")], "test")
    return TestClient(create_app(cfg, keys=keys), headers={"X-API-Key": "k"})


def lines(n: int, bad: dict[int, str] | None = None) -> Iterator[bytes]:
    """A body of ``n`` rows sent in many chunks, as a big upload arrives."""
    yield b"phone,name\n"
    for i in range(n):
        yield ((bad or {}).get(i) or f"+86139{i:08d},n{i}").encode() + b"\n"


def test_a_csv_upload_enqueues_every_row(cfg: Settings) -> None:
    client = client_for(cfg)
    resp = client.post(
        "/v1/jobs/csv",
        params={"account": "nx", "content": "Hi {name}", "priority": "high"},
        content=lines(2500),
        headers={"Content-Type": CSV},
    )
    assert resp.status_code == 201, resp.text
    assert resp.json()["total"] == 2500 and resp.json()["created"] is True
    job = client.get(f"/v1/jobs/{resp.json()['job_id']}").json()
    assert job["total"] == 2500


def test_every_problem_by_row_and_nothing_stored(cfg: Settings) -> None:
    client = client_for(cfg)
    before = rows(cfg)
    resp = client.post(
        URL,
        content=lines(3000, {5: "+86133bad,x", 2999: "12,y"}),
        headers={"Content-Type": CSV},
    )
    assert resp.status_code == 422, resp.text
    found = resp.json()
    assert found["total"] == 2
    assert [p["loc"][:3] for p in found["detail"]] == [["body", "row", 7], ["body", "row", 3001]]
    assert found["detail"][0]["msg"].startswith("row 7 phone = '+86133bad': ")
    assert rows(cfg) == before


@pytest.mark.parametrize(
    ("body", "rule"),
    [
        (b"name\nx\n", "the header row must have a 'phone' column"),
        (b"phone\n+8613800138000,extra\n", "has 1 more cell(s) than the header"),
        (b"phone\n+8613800138000\x00\n", "holds a NUL character"),
    ],
)
def test_an_unreadable_csv_is_one_422_naming_it(cfg: Settings, body: bytes, rule: str) -> None:
    before = rows(cfg)
    resp = client_for(cfg).post("/v1/jobs/csv?account=nx&content=hi", content=body)
    assert resp.status_code == 422 and rule in resp.json()["detail"][0]["rule"], resp.text
    assert rows(cfg) == before


def test_encoding_options_and_bounds(cfg: Settings) -> None:
    client = client_for(cfg)
    gbk = "phone,content\n+8613800138000,你好\n".encode("gbk")
    refused = client.post("/v1/jobs/csv?account=nx", content=gbk)
    assert refused.status_code == 400 and "encoding" in refused.json()["detail"]
    assert client.post("/v1/jobs/csv?account=nx&encoding=gbk", content=gbk).status_code == 201
    unknown = client.post("/v1/jobs/csv?account=nx&encoding=nope", content=gbk)
    assert unknown.status_code == 422 and unknown.json()["detail"][0]["field"] == "encoding"
    both = client.post(
        "/v1/jobs/csv?account=nx&content=x&ttl_s=5&expires_at=2099-01-01T00:00:00Z",
        content=b"phone\n+8613800138000\n",
    )
    assert both.status_code == 422 and "not both" in both.text
    other = client.post("/v1/jobs/csv?account=elsewhere", content=gbk)
    assert other.status_code == 422 and other.json()["detail"][0]["field"] == "account"


def test_the_upload_bound_is_its_own_and_the_json_bound_is_kept(cfg: Settings) -> None:
    small = dataclasses.replace(cfg, api_max_body_bytes=1000, api_max_upload_bytes=50_000)
    client = client_for(small)
    before = rows(small)
    ok = client.post(URL, content=lines(100))
    assert ok.status_code == 201, ok.text  # over max_body_bytes, under max_upload_bytes
    over = client.post(URL, content=lines(5000))
    assert over.status_code == 413 and "max_upload_bytes" in over.json()["detail"]
    assert rows(small) == (before[0] + 1, before[1] + 100)  # the cut-off upload: nothing
    big_json = {"account": "nx", "recipients": [{"phone": "+8613800138000"}] * 100}
    assert client.post("/v1/jobs", json=big_json).status_code == 413


def test_the_idempotency_key_returns_the_same_job(cfg: Settings) -> None:
    client = client_for(cfg)
    url = URL
    headers = {"Idempotency-Key": "upload-1"}
    first = client.post(url, content=lines(3), headers=headers)
    again = client.post(url, content=lines(3), headers=headers)
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["job_id"] == again.json()["job_id"]
    other = client.post(url, content=lines(4), headers=headers)
    assert other.status_code == 409


def test_dry_run_stores_nothing(cfg: Settings) -> None:
    before = rows(cfg)
    resp = client_for(cfg).post(URL + "&dry_run=true", content=lines(5))
    assert resp.status_code == 200 and resp.json()["recipients"] == 5
    assert rows(cfg) == before
