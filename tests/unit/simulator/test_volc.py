"""Volcengine ``BatchAppend`` and ``BindAXN`` behind the signature check, via the ASGI app."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from teledispatch.simulator.context import Sim
from teledispatch.simulator.state import AXN_PHONE_X, AXN_POOL_NO
from teledispatch.simulator.testing import FakeClock, asgi_client, build_app, volc_headers

pytestmark = pytest.mark.anyio
JSON = "application/json; charset=UTF-8"
FORM = "application/x-www-form-urlencoded"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def _call(
    client: httpx.AsyncClient,
    sim: Sim,
    clock: FakeClock,
    action: str,
    body: bytes,
    *,
    axn: bool = False,
    tamper: str | None = None,
    now: float | None = None,
) -> httpx.Response:
    creds = sim.credentials
    ak, sk = (
        (creds.axn_access_key, creds.axn_secret)
        if axn
        else (creds.vms_access_key, creds.vms_secret)
    )
    content_type = FORM if action == "BindAXN" else JSON
    query, headers = volc_headers(
        ak,
        sk,
        host="sim.test",
        action=action,
        body=body,
        content_type=content_type,
        now=clock.now if now is None else now,
    )
    if tamper == "body":
        # One byte, and still valid JSON, so only the signature can notice.
        body = body.replace(b"0000000", b"0000001", 1)
    elif tamper == "query":
        query = query.replace("2022-01-01", "2022-01-02")
    elif tamper == "header":
        headers["Content-Type"] = content_type[:-1] + "X"
    return await client.post(f"/?{query}", content=body, headers=headers)


def _append_body(task: str, *phones: str, **item: Any) -> bytes:
    return json.dumps(
        {"TaskOpenId": task, "PhoneList": [{"Phone": p, **item} for p in phones]}
    ).encode()


def _error(response: httpx.Response) -> str:
    code: str = response.json()["ResponseMetadata"]["Error"]["Code"]
    return code


async def test_append_success_envelope_and_log() -> None:
    sim, app, clock = build_app()
    async with asgi_client(app) as client:
        response = await _call(
            client,
            sim,
            clock,
            "BatchAppend",
            _append_body("sim-task-1", "13700000000", "13700000001"),
        )
        log = (await client.get("/_sim/requests")).json()
    assert response.status_code == 200
    answer = response.json()
    meta = answer["ResponseMetadata"]
    assert {k: meta[k] for k in ("Action", "Version", "Service", "Region")} == {
        "Action": "BatchAppend",
        "Version": "2022-01-01",
        "Service": "vms",
        "Region": "cn-north-1",
    }
    assert meta["RequestId"] and "Error" not in meta
    assert answer["Result"] == {"TaskOpenId": "sim-task-1", "FailList": []}
    assert log[0]["channel"] == "volc.vms.append" and log[0]["code"] is None
    assert log[0]["accepted"] == ["13700000000", "13700000001"]


async def test_append_duplicates_within_and_across_calls() -> None:
    sim, app, clock = build_app()
    async with asgi_client(app) as client:
        await _call(client, sim, clock, "BatchAppend", _append_body("sim-task-1", "13700000000"))
        response = await _call(
            client,
            sim,
            clock,
            "BatchAppend",
            _append_body("sim-task-1", "13700000000", "13700000002", "13700000002"),
        )
        other_task = await _call(
            client, sim, clock, "BatchAppend", _append_body("sim-task-2", "13700000000")
        )
    fails = response.json()["Result"]["FailList"]
    assert [(f["Index"], f["Phone"], f["Type"]) for f in fails] == [
        (0, "13700000000", "REDUPLICATED_ITEM"),
        (2, "13700000002", "REDUPLICATED_ITEM"),
    ]
    assert other_task.json()["Result"]["FailList"] == []


async def test_append_invalid_phone_and_tts_param_empty() -> None:
    sim, app, clock = build_app()
    async with asgi_client(app) as client:
        bad = await _call(
            client, sim, clock, "BatchAppend", _append_body("sim-task-1", "abc", "13700000000")
        )
        tts = await _call(
            client, sim, clock, "BatchAppend", _append_body("sim-task-tts", "13700000000")
        )
        tts_ok = await _call(
            client,
            sim,
            clock,
            "BatchAppend",
            _append_body("sim-task-tts", "13700000001", PhoneParamJson='{"a":1}'),
        )
    assert [f["Type"] for f in bad.json()["Result"]["FailList"]] == ["INVALID_PHONE_FORMAT"]
    assert [f["Type"] for f in tts.json()["Result"]["FailList"]] == ["TTS_PARAM_EMPTY"]
    assert tts_ok.json()["Result"]["FailList"] == []


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (_append_body("no-such-task", "13700000000"), "TaskNotFound"),
        (json.dumps({"PhoneList": [{"Phone": "13700000000"}]}).encode(), "MissingParameter"),
        (json.dumps({"TaskOpenId": "sim-task-1"}).encode(), "MissingParameter"),
        (b"not json", "InvalidParameter"),
        (_append_body("sim-task-1", "13700000000", TtsContent="x" * 251), "InvalidParameter"),
    ],
)
async def test_append_client_errors(body: bytes, code: str) -> None:
    sim, app, clock = build_app()
    async with asgi_client(app) as client:
        response = await _call(client, sim, clock, "BatchAppend", body)
        log = (await client.get("/_sim/requests")).json()
    assert response.status_code == 400 and _error(response) == code
    assert "Result" not in response.json()
    assert log[0]["code"] == code and log[0]["accepted"] == []


async def test_append_phone_list_limit() -> None:
    sim, app, clock = build_app()
    phones = [f"137{n:08d}" for n in range(10_001)]
    async with asgi_client(app) as client:
        over = await _call(client, sim, clock, "BatchAppend", _append_body("sim-task-1", *phones))
        at = await _call(
            client, sim, clock, "BatchAppend", _append_body("sim-task-1", *phones[:10_000])
        )
    assert over.status_code == 400 and _error(over) == "PhoneListExceedLimit"
    assert at.status_code == 200 and at.json()["Result"]["FailList"] == []


@pytest.mark.parametrize("tamper", ["body", "query", "header"])
async def test_tampered_requests_are_403(tamper: str) -> None:
    sim, app, clock = build_app()
    async with asgi_client(app) as client:
        response = await _call(
            client,
            sim,
            clock,
            "BatchAppend",
            _append_body("sim-task-1", "13700000000"),
            tamper=tamper,
        )
        log = (await client.get("/_sim/requests")).json()
    assert response.status_code == 403 and _error(response) == "SignatureDoesNotMatch"
    assert log[0]["http_status"] == 403 and len(log[0]["ids"]) == 1


async def test_stale_x_date_is_invalid_timestamp() -> None:
    sim, app, clock = build_app()
    async with asgi_client(app) as client:
        response = await _call(
            client,
            sim,
            clock,
            "BatchAppend",
            _append_body("sim-task-1", "13700000000"),
            now=clock.now - 301,
        )
    assert response.status_code == 403 and _error(response) == "InvalidTimestamp"


async def test_unknown_version_and_missing_auth() -> None:
    sim, app, clock = build_app()
    async with asgi_client(app) as client:
        body = _append_body("sim-task-1", "13700000000")
        creds = sim.credentials
        query, headers = volc_headers(
            creds.vms_access_key,
            creds.vms_secret,
            host="sim.test",
            action="BatchAppend",
            body=body,
            content_type=JSON,
            now=clock.now,
            extra_query={"Version": "2020-01-01"},
        )
        version = await client.post(f"/?{query}", content=body, headers=headers)
        unsigned = await client.post("/?Action=BatchAppend&Version=2022-01-01", content=body)
    assert version.status_code == 404 and _error(version) == "InvalidActionOrVersion"
    assert unsigned.status_code == 401 and _error(unsigned) == "MissingAuthenticationToken"


def _bind_body(clock: FakeClock, **fields: str) -> bytes:
    form = {
        "PhoneNoA": "18811791647",
        "PhoneNoB": "13718578258",
        "PhoneNoX": AXN_PHONE_X[0],
        "NumberPoolNo": AXN_POOL_NO,
        "ExpireTime": str(int(clock.now) + 3600),
        "AudioRecordFlag": "1",
        "UserData": "order-1",
        **fields,
    }
    return urlencode({k: v for k, v in form.items() if v is not None}).encode()


async def test_bind_success_then_conflict_then_rebind_after_expiry() -> None:
    sim, app, clock = build_app()
    async with asgi_client(app) as client:
        first = await _call(client, sim, clock, "BindAXN", _bind_body(clock), axn=True)
        again = await _call(client, sim, clock, "BindAXN", _bind_body(clock), axn=True)
        other_x = await _call(
            client, sim, clock, "BindAXN", _bind_body(clock, PhoneNoX=AXN_PHONE_X[1]), axn=True
        )
        clock.advance(3601)
        after = await _call(client, sim, clock, "BindAXN", _bind_body(clock), axn=True)
        log = (await client.get("/_sim/requests")).json()
    result = first.json()["Result"]
    assert first.status_code == 200
    assert result["Status"] == 1 and result["SubId"].startswith("S")
    assert (result["PhoneNoA"], result["PhoneNoB"], result["PhoneNoX"]) == (
        "18811791647",
        "13718578258",
        AXN_PHONE_X[0],
    )
    assert {"PhoneNoACityCode", "PhoneNoBCityCode", "PhoneNoXCityCode"} <= result.keys()
    assert again.status_code == 400 and _error(again) == "ConflictWithExisting"
    assert other_x.status_code == 200
    assert after.status_code == 200 and after.json()["Result"]["SubId"] != result["SubId"]
    assert [e["channel"] for e in log] == ["volc.axn.bind"] * 4
    assert [e["accepted"] for e in log] == [["18811791647"], [], ["18811791647"], ["18811791647"]]


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"ExpireTime": "+60"}, "InvalidParameter"),
        ({"ExpireTime": "2145916800"}, "InvalidParameter"),
        ({"ExpireTime": "soon"}, "InvalidParameter"),
        ({"NumberPoolNo": "NP-unknown"}, "InvalidParameter"),
        ({"PhoneNoX": "13999999999"}, "InvalidParameter"),
        ({"PhoneNoA": "188-1179"}, "InvalidParameter"),
        ({"AudioRecordFlag": "2"}, "InvalidParameter"),
        ({"UserData": "u" * 2049}, "InvalidParameter"),
        ({"PhoneNoA": ""}, "MissingParameter"),
    ],
)
async def test_bind_client_errors(change: dict[str, str], code: str) -> None:
    sim, app, clock = build_app()
    if change.get("ExpireTime") == "+60":
        change = {"ExpireTime": str(int(clock.now) + 60)}
    async with asgi_client(app) as client:
        response = await _call(client, sim, clock, "BindAXN", _bind_body(clock, **change), axn=True)
    assert response.status_code == 400 and _error(response) == code


async def test_bind_expire_just_inside_window_and_without_b() -> None:
    sim, app, clock = build_app()
    async with asgi_client(app) as client:
        response = await _call(
            client,
            sim,
            clock,
            "BindAXN",
            _bind_body(clock, ExpireTime=str(int(clock.now) + 61), PhoneNoB=""),
            axn=True,
        )
    assert response.status_code == 200 and response.json()["Result"]["PhoneNoB"] == ""


async def test_either_volc_account_may_call_either_action() -> None:
    sim, app, clock = build_app()
    async with asgi_client(app) as client:
        response = await _call(client, sim, clock, "BindAXN", _bind_body(clock), axn=False)
    assert response.status_code == 200
