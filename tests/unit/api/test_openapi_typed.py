"""The OpenAPI document: recipients typed per channel from the registry, and operation links."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from teledispatch.api.app import create_app
from teledispatch.api.auth import hash_key, parse_hashed_keys
from teledispatch.channels.registry import CHANNELS
from teledispatch.config import Settings
from teledispatch.producer import submit
from teledispatch.producer.jobs import SendJob
from teledispatch.producer.submit import check_channel
from teledispatch.validation import ValidationFailed
from tests.support import make_settings

REF = "#/components/schemas/"


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    return create_app(Settings(), keys=[]).openapi()


def test_a_job_is_a_union_told_apart_by_channel(schema: dict[str, Any]) -> None:
    parts = schema["components"]["schemas"]
    job = parts["SendJob"]
    assert job["discriminator"]["propertyName"] == "channel"
    mapping = job["discriminator"]["mapping"]
    assert set(mapping) == set(CHANNELS)
    assert [v["$ref"] for v in job["oneOf"]] == list(mapping.values())
    for channel, ref in mapping.items():
        variant = parts[ref.removeprefix(REF)]
        assert variant["properties"]["channel"]["enum"] == [channel]
        assert "channel" in variant["required"]
        recipient = parts[variant["properties"]["recipients"]["items"]["$ref"].removeprefix(REF)]
        # The channel's own rules name the fields: nothing is written twice.
        assert set(recipient["properties"]) == set(CHANNELS[channel].rules.fields)


def test_a_created_job_links_to_its_operations(schema: dict[str, Any]) -> None:
    operations = {op["operationId"] for ops in schema["paths"].values() for op in ops.values()}
    for path in ("/v1/jobs", "/v1/jobs/csv"):
        links = schema["paths"][path]["post"]["responses"]["201"]["links"]
        assert {link["operationId"] for link in links.values()} == {
            "get_job", "get_job_messages", "cancel_job"
        }  # fmt: skip
        assert {link["operationId"] for link in links.values()} <= operations
        for link in links.values():
            assert link["parameters"] == {"job_id": "$response.body#/job_id"}


def test_the_stated_channel_must_be_the_accounts(db_url: str, monkeypatch: Any) -> None:
    monkeypatch.setattr(submit, "wake", lambda *a: None)
    cfg = make_settings(db_url)
    client = TestClient(
        create_app(cfg, keys=parse_hashed_keys([hash_key("k")], "test")), headers={"X-API-Key": "k"}
    )
    job: dict[str, Any] = {"account": "nx", "recipients": [{"phone": "+8613800138000"}]}
    job["defaults"] = {"content": "x"}
    wrong = client.post("/v1/jobs", json={**job, "channel": "uspeedo.sms"})
    assert wrong.status_code == 422 and wrong.json()["detail"][0]["field"] == "channel"
    assert client.post("/v1/jobs", json={**job, "channel": "nxcloud.sms"}).status_code == 201
    assert client.post("/v1/jobs", json=job).status_code == 201  # stating it stays optional
    with pytest.raises(ValidationFailed, match="channel"):
        check_channel(SendJob.model_validate({**job, "channel": "volc.axn.bind"}), cfg)
