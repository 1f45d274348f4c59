"""The documented answer shapes the simulator can give, and the requests it refuses."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from teledispatch.simulator.context import Sim, SimOptions
from teledispatch.simulator.faults import FaultConfig
from teledispatch.simulator.testing import FakeClock, asgi_client, basic_auth, build_app, nx_headers

pytestmark = pytest.mark.anyio
NX_PATH = "/v1/sms/multi/mt"
US_PATH = "/api/v1/usms/SendBatchUSMSMessage"
US_RECEIPT = "/api/v1/usms/USMSSendReceipt"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def _nx(
    client: httpx.AsyncClient, sim: Sim, clock: FakeClock, phones: list[str], **headers: str
) -> dict[str, Any]:
    items = [{"phone": p, "content": "hi"} for p in phones]
    body = json.dumps({"appKey": sim.credentials.nx_app_key, "items": items}).encode()
    sent = nx_headers(sim.credentials, body, clock.now)
    sent.update(headers)
    response = await client.post(NX_PATH, content=body, headers=sent)
    assert response.status_code == 200
    result: dict[str, Any] = response.json()
    return result


@pytest.mark.parametrize(
    ("plain", "message"),
    [
        (False, "Incorrect phone number format (13005)"),
        (True, "Incorrect phone number format"),
    ],
)
async def test_nxcloud_item_message_suffix_is_optional(plain: bool, message: str) -> None:
    sim, app, clock = build_app(SimOptions(faults=FaultConfig(nxcloud_plain_items=plain)))
    async with asgi_client(app) as client:
        answer = await _nx(client, sim, clock, ["86-150"])
    assert answer["code"] == 0 and answer["data"][0]["message"] == message


async def test_nxcloud_request_level_13007() -> None:
    sim, app, clock = build_app(SimOptions(faults=FaultConfig(nx_rate_limit_rate=1.0)))
    async with asgi_client(app) as client:
        answer = await _nx(client, sim, clock, ["8615088800001"])
    assert answer == {
        "code": 13007,
        "message": "Rate limit exceeded (5 messages per hour)",
        "data": None,
    }
    assert sim.state.log[0]["code"] == 13007 and sim.state.log[0]["accepted"] == []


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", ""])
async def test_nxcloud_refuses_a_body_not_sent_as_json(content_type: str) -> None:
    sim, app, clock = build_app()
    async with asgi_client(app) as client:
        answer = await _nx(client, sim, clock, ["8615088800001"], **{"Content-Type": content_type})
        charset = await _nx(
            client,
            sim,
            clock,
            ["8615088800002"],
            **{"Content-Type": "application/json;charset=utf-8"},
        )
    assert answer["code"] == 1002 and answer["data"] is None
    assert charset["code"] == 0 and charset["data"][0]["status"] == "Success"


async def test_nxcloud_refuses_a_phone_without_country_code() -> None:
    sim, app, clock = build_app()
    phones = ["13800138000", "18651883168", "8613800138000", "14155550123"]
    async with asgi_client(app) as client:
        answer = await _nx(client, sim, clock, phones)
    statuses = [(item["phone"], item["status"]) for item in answer["data"]]
    assert statuses == [
        ("13800138000", "Failure"),
        ("18651883168", "Failure"),
        ("8613800138000", "Success"),
        ("14155550123", "Success"),
    ]
    assert answer["data"][0]["message"].endswith("(13005)")


def _us_payload(*tasks: tuple[str, list[str]]) -> bytes:
    content = [
        {
            "TemplateId": template,
            "SenderId": "USpeedo",
            "Target": [{"Phone": p, "TemplateParams": ["1"]} for p in phones],
        }
        for template, phones in tasks
    ]
    return json.dumps({"TaskContent": content}).encode()


async def test_uspeedo_sdk_shape_lists_failures_per_task_with_one_session() -> None:
    sim, app, _clock = build_app(SimOptions(faults=FaultConfig(uspeedo_shape="sdk")))
    auth = basic_auth(sim.credentials.us_access_key, sim.credentials.us_secret)
    body = _us_payload(("tpl-a", ["8613800138000", "bad"]), ("tpl-b", ["8613900139000"]))
    async with asgi_client(app) as client:
        answer = (await client.post(US_PATH, content=body, headers=auth)).json()
        receipts = (await client.get(f"{US_RECEIPT}?id={answer['SessionNo']}", headers=auth)).json()
    assert answer["RetCode"] == 0 and answer["SuccessCount"] == 2
    assert isinstance(answer["SessionNo"], str) and "FailedTargetPhones" not in answer
    assert answer["FailContent"] == [
        {
            "TemplateId": "tpl-a",
            "SenderId": "USpeedo",
            "FailureDetails": "",
            "Target": [
                {"Phone": "bad", "TemplateParams": ["1"], "FailureDetails": "Invalid phone number"}
            ],
        }
    ]
    (session,) = receipts["Data"]
    assert sorted(r["Phone"] for r in session["ReceiptSet"]) == ["8613800138000", "8613900139000"]


async def test_uspeedo_sdk_shape_without_failures_or_acceptances() -> None:
    sim, app, _clock = build_app(SimOptions(faults=FaultConfig(uspeedo_shape="sdk")))
    auth = basic_auth(sim.credentials.us_access_key, sim.credentials.us_secret)
    async with asgi_client(app) as client:
        clean = (
            await client.post(US_PATH, content=_us_payload(("t", ["8613800138000"])), headers=auth)
        ).json()
        refused = (
            await client.post(US_PATH, content=_us_payload(("t", ["bad"])), headers=auth)
        ).json()
    assert clean["FailContent"] == [] and clean["SuccessCount"] == 1 and clean["SessionNo"]
    # The older gateway's reference: SessionNo only when at least one message was accepted.
    assert "SessionNo" not in refused and refused["SuccessCount"] == 0
    assert refused["FailContent"][0]["Target"][0]["Phone"] == "bad"


async def test_uspeedo_shape_can_change_while_running() -> None:
    sim, app, _clock = build_app()
    auth = basic_auth(sim.credentials.us_access_key, sim.credentials.us_secret)
    body = _us_payload(("t", ["8613800138000"]))
    async with asgi_client(app) as client:
        basic = (await client.post(US_PATH, content=body, headers=auth)).json()
        await client.post(
            "/_sim/faults", content=b'{"channel": "uspeedo.sms", "uspeedo_shape": "sdk"}'
        )
        sdk = (await client.post(US_PATH, content=body, headers=auth)).json()
    assert isinstance(basic["SessionNo"], list) and basic["FailedTargetPhones"] == []
    assert isinstance(sdk["SessionNo"], str) and sdk["FailContent"] == []


async def test_uspeedo_sdk_partial_success_may_carry_a_non_zero_retcode() -> None:
    faults = FaultConfig(uspeedo_shape="sdk", uspeedo_partial_retcode=215392)
    sim, app, _clock = build_app(SimOptions(faults=faults))
    auth = basic_auth(sim.credentials.us_access_key, sim.credentials.us_secret)
    async with asgi_client(app) as client:
        partial = await client.post(
            US_PATH, content=_us_payload(("t", ["8613800138000", "bad"])), headers=auth
        )
        whole = await client.post(
            US_PATH, content=_us_payload(("t", ["8613800138000"])), headers=auth
        )
    answer = partial.json()
    assert partial.status_code == 200 and answer["RetCode"] == 215392
    assert answer["SuccessCount"] == 1 and isinstance(answer["SessionNo"], str)
    assert answer["FailContent"][0]["Target"][0]["Phone"] == "bad"
    assert whole.json()["RetCode"] == 0
    assert [e["code"] for e in sim.state.log] == [215392, 0]
    assert sim.state.log[0]["accepted"] == ["8613800138000"]
