"""The API answers malformed requests with a 4xx before any route or database sees them."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from teledispatch.api.app import create_app
from teledispatch.config import ConfigError, Settings, load_settings, parse_config

KEY = "unit-key"


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    accounts = parse_config(
        {"accounts": {"nx": {"channel": "nxcloud.sms", "base_url": "http://127.0.0.1:9"}}}
    )
    cfg = Settings(
        accounts=accounts,
        database_url=f"sqlite:///{tmp_path / 'api.db'}",
        redis_url="redis://127.0.0.1:9/0",
        api_max_body_bytes=2000,
    )
    app = create_app(cfg, keys=[hashlib.sha256(KEY.encode()).digest()])
    with TestClient(app, raise_server_exceptions=False, headers={"X-API-Key": KEY}) as c:
        yield c


@pytest.mark.parametrize(
    ("method", "url", "field"),
    [
        ("GET", "/v1/messages?phone=%2B86%00138", "phone"),
        ("GET", "/v1/messages?provider_id=a%00b", "provider_id"),
        ("GET", "/v1/jobs/a%00b", "path"),
        ("GET", "/v1/jobs/a%00b/messages", "path"),
        ("GET", "/v1/jobs/x/messages?cursor=c%00", "cursor"),
        ("GET", "/v1/jobs/x/messages?status=sent%00", "status"),
        ("POST", "/v1/jobs/a%00b/cancel", "path"),
        ("GET", "/readyz?x=%00", "x"),
    ],
)
def test_nul_in_path_or_query_is_422(client: TestClient, method: str, url: str, field: str) -> None:
    r = client.request(method, url)
    assert r.status_code == 422, r.text
    problem = r.json()["detail"][0]
    assert problem["field"] == field and "NUL" in problem["rule"]


def test_nul_in_body_string_is_422_naming_the_field(client: TestClient) -> None:
    job = {"account": "nx", "recipients": [{"phone": "+8613800138000", "content": "a\x00"}]}
    r = client.post("/v1/jobs", json=job)
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["loc"] == ["body", "recipients", 0, "content"]
    # An escaped backslash followed by "u0000" is text, not a NUL: it goes on to validation.
    text = '{"account": "nx", "recipients": [{"phone": "+8613800138000", "content": "\\\\u0000"}'
    r = client.post(
        "/v1/jobs", content=text + ", {}]}", headers={"content-type": "application/json"}
    )
    assert all("NUL" not in p["rule"] for p in r.json()["detail"])


def test_national_number_lookup_is_422(client: TestClient) -> None:
    r = client.get("/v1/messages", params={"phone": "13800138000"})
    assert r.status_code == 422, r.text
    problem = r.json()["detail"][0]
    assert problem["loc"] == ["query", "phone"] and "country code" in problem["rule"]


def test_body_over_the_limit_is_413_by_length_or_by_stream(client: TestClient) -> None:
    big = b'{"account": "' + b"x" * 5000 + b'", "recipients": []}'
    r = client.post("/v1/jobs", content=big, headers={"content-type": "application/json"})
    assert r.status_code == 413 and "max_body_bytes" in r.json()["detail"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: refused while reading
        yield from (big[i : i + 500] for i in range(0, len(big), 500))

    r = client.post("/v1/jobs", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413


def test_errors_quote_only_a_prefix_of_a_long_value(client: TestClient) -> None:
    job = {"account": "y" * 1500, "recipients": [{"phone": "+8613800138000"}]}
    r = client.post("/v1/jobs", json=job)
    assert r.status_code == 422
    assert "y" * 100 not in r.text and len(r.text) < 1200


def test_non_utf8_body_is_400_and_documented(client: TestClient) -> None:
    r = client.post(
        "/v1/jobs", content=b'{"account": "\xff"}', headers={"content-type": "application/json"}
    )
    assert r.status_code == 400 and "UTF-8" in r.json()["detail"]
    post = client.get("/openapi.json").json()["paths"]["/v1/jobs"]["post"]
    assert {"400", "413", "422"} <= set(post["responses"])


def test_schema_enumerates_status_and_states_the_lookup_rule(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    params = spec["paths"]["/v1/jobs/{job_id}/messages"]["get"]["parameters"]
    status = next(p for p in params if p["name"] == "status")
    assert "#/components/schemas/Status" in str(status["schema"])
    assert {"sent", "cancelled", "delivered"} <= set(
        spec["components"]["schemas"]["Status"]["enum"]
    )
    assert "exactly one of" in spec["paths"]["/v1/messages"]["get"]["description"]


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_pages_load_every_asset_from_this_app(client: TestClient, page: str) -> None:
    html = client.get(page).text
    assert "http://" not in html and "https://" not in html
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert any(a.endswith(".js") for a in assets)
    for asset in assets:
        assert client.get(asset).status_code == 200, asset


def test_max_body_bytes_is_read_from_the_api_table(tmp_path: Path) -> None:
    path = tmp_path / "teledispatch.toml"
    path.write_text("[api]\nmax_body_bytes = 12345\n", encoding="utf-8")
    assert load_settings(path).api_max_body_bytes == 12345
    path.write_text('[api]\nmax_body_bytes = "big"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="max_body_bytes"):
        load_settings(path)
