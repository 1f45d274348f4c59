"""USpeedo ``SendBatchUSMSMessage`` and ``USMSSendReceipt`` driven through the ASGI app."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from teledispatch.simulator.context import Sim, SimOptions
from teledispatch.simulator.faults import FaultConfig
from teledispatch.simulator.testing import asgi_client, basic_auth, build_app

pytestmark = pytest.mark.anyio
PATH = "/api/v1/usms/SendBatchUSMSMessage"
RECEIPT = "/api/v1/usms/USMSSendReceipt"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _auth(sim: Sim) -> dict[str, str]:
    return basic_auth(sim.credentials.us_access_key, sim.credentials.us_secret)


def _task(*phones: str, **extra: Any) -> dict[str, Any]:
    targets = [{"Phone": p, "TemplateParams": ["123456"]} for p in phones]
    return {"TemplateId": "tpl-1", "SenderId": "USpeedo", "Target": targets, **extra}


async def _post(client: httpx.AsyncClient, sim: Sim, payload: Any) -> httpx.Response:
    return await client.post(PATH, content=json.dumps(payload).encode(), headers=_auth(sim))


async def test_success_one_session_per_task() -> None:
    sim, app, _ = build_app()
    payload = {"TaskContent": [_task("13800138000", "13900139000"), _task("8613700000000")]}
    async with asgi_client(app) as client:
        response = await _post(client, sim, payload)
        log = (await client.get("/_sim/requests")).json()
    answer = response.json()
    assert response.status_code == 200
    assert answer["RetCode"] == 0 and answer["Message"] == "success"
    assert len(answer["SessionNo"]) == 2 and answer["FailedTargetPhones"] == []
    assert log[0]["ids"] == ["13800138000", "13900139000", "8613700000000"]
    assert log[0]["accepted"] == log[0]["ids"] and log[0]["code"] == 0


@pytest.mark.parametrize(
    "headers",
    [
        {},
        basic_auth("nobody", "nothing"),
        {"Authorization": "Basic !!!notbase64"},
        {"Authorization": "Bearer abc"},
    ],
    ids=["missing", "wrong", "garbled", "other-scheme"],
)
async def test_bad_basic_auth_is_gateway_401(headers: dict[str, str]) -> None:
    _sim, app, _ = build_app()
    body = json.dumps({"TaskContent": [_task("13800138000")]}).encode()
    async with asgi_client(app) as client:
        response = await client.post(PATH, content=body, headers=headers)
        log = (await client.get("/_sim/requests")).json()
    assert response.status_code == 401
    assert "RetCode" not in response.json()
    assert response.headers["www-authenticate"].startswith("Basic")
    assert log[0]["http_status"] == 401 and log[0]["ids"] == ["13800138000"]


async def test_wrong_secret_for_right_key_is_401() -> None:
    sim, app, _ = build_app()
    async with asgi_client(app) as client:
        response = await client.post(
            PATH,
            json={"TaskContent": [_task("138")]},
            headers=basic_auth(sim.credentials.us_access_key, "guess"),
        )
    assert response.status_code == 401


@pytest.mark.parametrize(
    ("payload", "code", "field"),
    [
        ({}, 215397, "TaskContent"),
        ({"TaskContent": []}, 215397, "TaskContent"),
        ({"TaskContent": "x"}, 215392, "TaskContent"),
        ({"TaskContent": [_task("13800138000", TemplateId="")]}, 215397, "TemplateId"),
        ({"TaskContent": [{"SenderId": "S", "Target": [{"Phone": "1"}]}]}, 215397, "TemplateId"),
        ({"TaskContent": [_task("13800138000", SenderId="")]}, 215397, "SenderId"),
        ({"TaskContent": [_task()]}, 215397, "Target"),
        ({"TaskContent": [_task("")]}, 215397, "Phone"),
        (
            {"TaskContent": [{**_task(), "Target": [{"Phone": "1", "TemplateParams": "x"}]}]},
            215392,
            "TemplateParams",
        ),
    ],
)
async def test_request_level_errors(payload: Any, code: int, field: str) -> None:
    sim, app, _ = build_app()
    async with asgi_client(app) as client:
        response = await _post(client, sim, payload)
    answer = response.json()
    assert response.status_code == 200
    assert answer["RetCode"] == code and f"[{field}]" in answer["Message"]
    assert "SessionNo" not in answer


async def test_more_than_max_targets_is_215392() -> None:
    sim, app, _ = build_app(SimOptions(uspeedo_max_targets=3))
    async with asgi_client(app) as client:
        over = await _post(
            client,
            sim,
            {"TaskContent": [_task("1380000001", "1380000002"), _task("1380000003", "1380000004")]},
        )
        at_limit = await _post(
            client, sim, {"TaskContent": [_task("1380000001", "1380000002"), _task("1380000003")]}
        )
    assert over.json()["RetCode"] == 215392
    assert at_limit.json()["RetCode"] == 0


async def test_default_limit_is_1000_targets() -> None:
    sim, app, _ = build_app()
    phones = [f"1380{n:07d}" for n in range(1001)]
    async with asgi_client(app) as client:
        over = await _post(client, sim, {"TaskContent": [_task(*phones)]})
        ok = await _post(client, sim, {"TaskContent": [_task(*phones[:1000])]})
    assert over.json()["RetCode"] == 215392
    assert ok.json()["RetCode"] == 0


async def test_bad_phone_is_a_failed_target_not_a_request_error() -> None:
    sim, app, _ = build_app()
    async with asgi_client(app) as client:
        response = await _post(client, sim, {"TaskContent": [_task("13800138000", "12ab")]})
        log = (await client.get("/_sim/requests")).json()
    answer = response.json()
    assert answer["RetCode"] == 0 and len(answer["SessionNo"]) == 1
    assert answer["FailedTargetPhones"] == [
        {"Phone": "12ab", "TemplateParams": ["123456"], "FailureReason": "Invalid phone number"}
    ]
    assert log[0]["accepted"] == ["13800138000"]


async def test_receipts_unknown_until_due_then_final() -> None:
    options = SimOptions(faults=FaultConfig(dr_delay_ms=60_000))
    sim, app, clock = build_app(options)
    async with asgi_client(app) as client:
        sent = await _post(client, sim, {"TaskContent": [_task("13800138000", "13900139000")]})
        session = sent.json()["SessionNo"][0]
        early = await client.get(RECEIPT, params={"id": session}, headers=_auth(sim))
        clock.advance(60)
        late = await client.get(
            RECEIPT, params=[("id", session), ("id", "nope")], headers=_auth(sim)
        )
    early_set = early.json()["Data"][0]["ReceiptSet"]
    assert [r["ReceiptResult"] for r in early_set] == ["Unknow", "Unknow"]
    data = late.json()["Data"]
    assert len(data) == 1 and data[0]["SessionNo"] == session
    receipts = data[0]["ReceiptSet"]
    assert [(r["Phone"], r["ReceiptResult"]) for r in receipts] == [
        ("13800138000", "Success"),
        ("13900139000", "Success"),
    ]
    assert all(r["ReceiptCode"] == "DELIVRD" and r["ReceiptTime"] > 0 for r in receipts)


async def test_receipt_fail_rate_and_limits() -> None:
    options = SimOptions(faults=FaultConfig(dr_delay_ms=0, dr_fail_rate=1.0))
    sim, app, _ = build_app(options)
    async with asgi_client(app) as client:
        sent = await _post(client, sim, {"TaskContent": [_task("13800138000")]})
        session = sent.json()["SessionNo"][0]
        failed = await client.get(RECEIPT, params={"id": session}, headers=_auth(sim))
        too_many = await client.get(
            RECEIPT, params=[("id", f"s{i}") for i in range(101)], headers=_auth(sim)
        )
        none = await client.get(RECEIPT, headers=_auth(sim))
        unauth = await client.get(RECEIPT, params={"id": session})
    assert failed.json()["Data"][0]["ReceiptSet"][0]["ReceiptResult"] == "Fail"
    assert too_many.json()["RetCode"] == 215392
    assert none.json()["RetCode"] == 215397
    assert unauth.status_code == 401
