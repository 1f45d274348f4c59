"""Fault options, limits and the ``/_sim`` endpoints, for every channel."""

from __future__ import annotations

import asyncio
import json
import time
from urllib.parse import urlencode

import httpx
import pytest

from teledispatch.simulator.context import Sim, SimOptions
from teledispatch.simulator.faults import (
    FaultConfig,
)
from teledispatch.simulator.state import AXN_PHONE_X, AXN_POOL_NO
from teledispatch.simulator.testing import (
    FakeClock,
    asgi_client,
    basic_auth,
    build_app,
    nx_headers,
    volc_headers,
)

pytestmark = pytest.mark.anyio
CHANNELS = ["nxcloud.sms", "uspeedo.sms", "volc.vms.append", "volc.axn.bind"]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


_serial = iter(range(10**9))


async def send_one(
    client: httpx.AsyncClient, sim: Sim, clock: FakeClock, channel: str, phone: str | None = None
) -> httpx.Response:
    """One correctly signed single-recipient request on ``channel``; a fresh number by default."""
    n = next(_serial)
    phone = phone or f"1370{n:07d}"
    creds = sim.credentials
    if channel == "nxcloud.sms":
        body = json.dumps(
            {
                "appKey": creds.nx_app_key,
                "items": [
                    {"phone": "86" + phone, "content": "hi", "sysMessageId": f"msg-{n:010d}"}
                ],
            }
        ).encode()
        return await client.post(
            "/v1/sms/multi/mt", content=body, headers=nx_headers(creds, body, clock.now)
        )
    if channel == "uspeedo.sms":
        payload = {
            "TaskContent": [{"TemplateId": "t", "SenderId": "s", "Target": [{"Phone": phone}]}]
        }
        return await client.post(
            "/api/v1/usms/SendBatchUSMSMessage",
            json=payload,
            headers=basic_auth(creds.us_access_key, creds.us_secret),
        )
    if channel == "volc.vms.append":
        body = json.dumps({"TaskOpenId": "sim-task-1", "PhoneList": [{"Phone": phone}]}).encode()
        action, ak, sk, ctype = (
            "BatchAppend",
            creds.vms_access_key,
            creds.vms_secret,
            "application/json",
        )
    else:
        form = {
            "PhoneNoA": phone,
            "PhoneNoX": AXN_PHONE_X[n % len(AXN_PHONE_X)],
            "NumberPoolNo": AXN_POOL_NO,
            "ExpireTime": str(int(clock.now) + 600),
        }
        body = urlencode(form).encode()
        action, ak, sk = "BindAXN", creds.axn_access_key, creds.axn_secret
        ctype = "application/x-www-form-urlencoded"
    query, headers = volc_headers(
        ak, sk, host="sim.test", action=action, body=body, content_type=ctype, now=clock.now
    )
    return await client.post(f"/?{query}", content=body, headers=headers)


def _accepted(response: httpx.Response, channel: str) -> bool:
    """Whether the provider accepted the single recipient of ``send_one``."""
    if response.status_code != 200:
        return False
    body = response.json()
    if channel == "nxcloud.sms":
        return bool(body["code"] == 0 and body["data"][0]["status"] == "Success")
    if channel == "uspeedo.sms":
        return bool(body["RetCode"] == 0 and not body["FailedTargetPhones"])
    if channel == "volc.vms.append":
        return not body["Result"]["FailList"]
    return "Result" in body


async def test_latency_delays_answers_but_requests_overlap() -> None:
    sim, app, clock = build_app(SimOptions(faults=FaultConfig(latency_ms=200)))
    async with asgi_client(app) as client:
        started = time.monotonic()
        one = await send_one(client, sim, clock, "nxcloud.sms")
        single = time.monotonic() - started
        started = time.monotonic()
        many = await asyncio.gather(
            *(send_one(client, sim, clock, "uspeedo.sms") for _ in range(20))
        )
        overlapped = time.monotonic() - started
    assert one.status_code == 200 and all(r.status_code == 200 for r in many)
    assert single >= 0.19  # asyncio may wake up to one clock tick early
    assert overlapped < 2.0  # 20 × 0.2 s = 4 s if they queued
