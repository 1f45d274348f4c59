"""NXCloud ``multi/mt`` and ``/api/sms/get`` driven through the ASGI app."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest

from teledispatch.simulator.context import Sim, SimOptions
from teledispatch.simulator.faults import FaultConfig
from teledispatch.simulator.testing import FakeClock, asgi_client, build_app, nx_headers

pytestmark = pytest.mark.anyio
PATH = "/v1/sms/multi/mt"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _body(sim: Sim, items: list[dict[str, Any]], **extra: Any) -> bytes:
    return json.dumps({"appKey": sim.credentials.nx_app_key, "items": items, **extra}).encode()


def _item(n: int = 1, **extra: Any) -> dict[str, Any]:
    return {"phone": f"86150888{n:05d}", "content": f"hello {n}", **extra}


async def _send(
    client: httpx.AsyncClient, sim: Sim, clock: FakeClock, body: bytes, **header_changes: str
) -> dict[str, Any]:
    headers = nx_headers(sim.credentials, body, clock.now)
    headers.update(header_changes)
    response = await client.post(PATH, content=body, headers=headers)
    assert response.status_code == 200
    result: dict[str, Any] = response.json()
    return result


async def test_success_uses_sys_message_id_and_logs_it() -> None:
    sim, app, clock = build_app()
    body = _body(sim, [_item(1, sysMessageId="our-id-0000001"), _item(2)])
    async with asgi_client(app) as client:
        answer = await _send(client, sim, clock, body)
        log = (await client.get("/_sim/requests")).json()
    assert answer["code"] == 0 and answer["message"] == "Success"
    first, second = answer["data"]
    assert first == {"phone": "8615088800001", "messageid": "our-id-0000001", "status": "Success"}
    assert second["status"] == "Success" and len(second["messageid"]) == 36
    assert log == [
        {
            "t": clock.now,
            "channel": "nxcloud.sms",
            "ids": ["our-id-0000001", "8615088800002"],
            "http_status": 200,
            "code": 0,
            "accepted": ["our-id-0000001", "8615088800002"],
            "dropped": False,
        }
    ]


async def test_older_documented_path_is_the_same_operation() -> None:
    sim, app, clock = build_app()
    body = _body(sim, [_item()])
    async with asgi_client(app) as client:
        response = await client.post(
            "/api/sms/multi/mt", content=body, headers=nx_headers(sim.credentials, body, clock.now)
        )
    assert response.json()["code"] == 0


@pytest.mark.parametrize("header", ["accessKey", "ts", "bizType", "action", "sign"])
async def test_missing_header_is_1001(header: str) -> None:
    sim, app, clock = build_app()
    body = _body(sim, [_item()])
    headers = nx_headers(sim.credentials, body, clock.now)
    del headers[header]
    async with asgi_client(app) as client:
        response = await client.post(PATH, content=body, headers=headers)
    assert response.json() == {"code": 1001, "message": "Missing required header", "data": None}


@pytest.mark.parametrize(("biz_type", "action"), [("1", "mtsend"), ("3", "send")])
async def test_wrong_biz_type_or_action_is_1002(biz_type: str, action: str) -> None:
    sim, app, clock = build_app()
    body = _body(sim, [_item()])
    headers = nx_headers(sim.credentials, body, clock.now, action=action, biz_type=biz_type)
    async with asgi_client(app) as client:
        response = await client.post(PATH, content=body, headers=headers)
    assert response.json()["code"] == 1002


async def test_bad_sign_and_tampered_body_are_1003() -> None:
    sim, app, clock = build_app()
    body = _body(sim, [_item()])
    async with asgi_client(app) as client:
        assert (await _send(client, sim, clock, body, sign="0" * 32))["code"] == 1003
        headers = nx_headers(sim.credentials, body, clock.now)
        tampered = body.replace(b"hello", b"hellp")
        response = await client.post(PATH, content=tampered, headers=headers)
        log = (await client.get("/_sim/requests")).json()
    assert response.json()["code"] == 1003
    assert [e["code"] for e in log] == [1003, 1003]
    assert all(e["accepted"] == [] for e in log)


@pytest.mark.parametrize(("skew", "code"), [(59.0, 0), (-59.0, 0), (61.0, 1004), (-61.0, 1004)])
async def test_timestamp_skew(skew: float, code: int) -> None:
    sim, app, clock = build_app()
    body = _body(sim, [_item()])
    headers = nx_headers(sim.credentials, body, clock.now + skew)
    async with asgi_client(app) as client:
        response = await client.post(PATH, content=body, headers=headers)
    assert response.json()["code"] == code


async def test_unknown_access_key_is_1005() -> None:
    sim, app, clock = build_app()
    body = _body(sim, [_item()])
    async with asgi_client(app) as client:
        answer = await _send(client, sim, clock, body, accessKey="someone-else")
    assert answer["code"] == 1005


async def test_bad_app_key_is_13002() -> None:
    sim, app, clock = build_app()
    body = json.dumps({"appKey": "wrong", "items": [_item()]}).encode()
    async with asgi_client(app) as client:
        answer = await _send(client, sim, clock, body)
    assert answer == {"code": 13002, "message": "Unavailable app or incorrect key", "data": None}


@pytest.mark.parametrize(
    "payload",
    [
        b"not json",
        b"[]",
        b'{"appKey": "x"}',
        None,  # 201 items
        None,  # bad sysMessageId
    ],
    ids=["not-json", "not-object", "no-items", "201-items", "bad-sysMessageId"],
)
async def test_malformed_requests_are_9000(payload: bytes | None, request: Any) -> None:
    sim, app, clock = build_app()
    if payload is None:
        if request.node.callspec.id == "201-items":
            payload = _body(sim, [_item(i) for i in range(201)])
        else:
            payload = _body(sim, [_item(1, sysMessageId="short")])
    async with asgi_client(app) as client:
        answer = await _send(client, sim, clock, payload)
    assert answer == {"code": 9000, "message": "Request parameter error", "data": None}


async def test_200_items_is_the_documented_maximum() -> None:
    sim, app, clock = build_app()
    async with asgi_client(app) as client:
        answer = await _send(client, sim, clock, _body(sim, [_item(i) for i in range(200)]))
    assert answer["code"] == 0 and len(answer["data"]) == 200


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"phone": "+8615088888888"}, 13005),
        ({"phone": "86-150"}, 13005),
        ({"content": ""}, 13009),
        ({"content": "x" * 1001}, 13001),
        ({"sourceAddress": "has space"}, 13006),
        ({"sourceAddress": "A" * 21}, 13006),
    ],
)
async def test_item_level_failures_leave_other_items_sent(
    change: dict[str, str], code: int
) -> None:
    sim, app, clock = build_app()
    bad = {**_item(2, sysMessageId="bad-item-00001"), **change}
    body = _body(sim, [_item(1, sysMessageId="good-item-0001"), bad])
    async with asgi_client(app) as client:
        answer = await _send(client, sim, clock, body)
        log = (await client.get("/_sim/requests")).json()
    assert answer["code"] == 0
    good, failed = answer["data"]
    assert good["status"] == "Success"
    assert failed["status"] == "Failure" and failed["messageid"] == "bad-item-00001"
    assert failed["message"].endswith(f"({code})")
    assert log[0]["accepted"] == ["good-item-0001"]


async def test_1000_char_content_and_20_char_source_are_accepted() -> None:
    sim, app, clock = build_app()
    body = _body(sim, [_item(1, content="x" * 1000, sourceAddress="A1" * 10)])
    async with asgi_client(app) as client:
        answer = await _send(client, sim, clock, body)
    assert answer["data"][0]["status"] == "Success"


class _Receiver:
    """Captures DR posts; ``wait`` is bounded so a missing DR fails instead of hanging."""

    def __init__(self) -> None:
        self.forms: list[dict[str, str]] = []
        self._event = asyncio.Event()

    def handler(self, request: httpx.Request) -> httpx.Response:
        assert request.headers["content-type"] == "application/x-www-form-urlencoded"
        form = {k: v[0] for k, v in parse_qs(request.content.decode()).items()}
        self.forms.append({**form, "_url": str(request.url)})
        self._event.set()
        return httpx.Response(200, text="success")

    async def wait(self, count: int) -> None:
        async with asyncio.timeout(5):
            while len(self.forms) < count:
                self._event.clear()
                await self._event.wait()


async def test_delivery_report_is_posted_to_dr_url() -> None:
    receiver = _Receiver()
    options = SimOptions(faults=FaultConfig(dr_delay_ms=20))
    sim, app, clock = build_app(options, dr_transport=httpx.MockTransport(receiver.handler))
    body = _body(
        sim,
        [
            _item(1, sysMessageId="dr-item-000001", drUrl="http://dr.test/a", ext="e1"),
            _item(2, sysMessageId="dr-item-000002"),
        ],
        drUrl="http://dr.test/default",
    )
    async with asgi_client(app) as client:
        await _send(client, sim, clock, body)
        await receiver.wait(2)
    await app.state.dr.aclose()
    by_id = {f["messageid"]: f for f in receiver.forms}
    first = by_id["dr-item-000001"]
    assert first["_url"] == "http://dr.test/a" and first["ext"] == "e1"
    assert (first["status"], first["result"], first["phone"]) == ("2", "DELIVRD", "8615088800001")
    assert {"drtime", "sendtime", "price", "currency", "rate", "size"} <= first.keys()
    assert by_id["dr-item-000002"]["_url"] == "http://dr.test/default"
    assert app.state.dr.sent == 2


async def test_dr_fail_rate_reports_undelivered() -> None:
    receiver = _Receiver()
    options = SimOptions(faults=FaultConfig(dr_delay_ms=0, dr_fail_rate=1.0))
    sim, app, clock = build_app(options, dr_transport=httpx.MockTransport(receiver.handler))
    body = _body(sim, [_item(1, drUrl="http://dr.test/x")])
    async with asgi_client(app) as client:
        await _send(client, sim, clock, body)
        await receiver.wait(1)
    await app.state.dr.aclose()
    assert (receiver.forms[0]["status"], receiver.forms[0]["result"]) == ("5", "UNDELIV")


async def test_no_dr_without_dr_url() -> None:
    receiver = _Receiver()
    options = SimOptions(faults=FaultConfig(dr_delay_ms=0))
    sim, app, clock = build_app(options, dr_transport=httpx.MockTransport(receiver.handler))
    async with asgi_client(app) as client:
        await _send(client, sim, clock, _body(sim, [_item(1)]))
        health = (await client.get("/_sim/health")).json()
    assert health["dr_pending"] == 0 and receiver.forms == []


def _ymd(t: float) -> str:
    return time.strftime("%Y%m%d", time.gmtime(t))


async def test_status_query_reports_acceptance_then_dr() -> None:
    options = SimOptions(faults=FaultConfig(dr_delay_ms=5000))
    sim, app, clock = build_app(options)
    creds = sim.credentials
    async with asgi_client(app) as client:
        await _send(client, sim, clock, _body(sim, [_item(1, sysMessageId="query-me-00001")]))
        form = {"appkey": creds.nx_app_key, "secretkey": creds.nx_secret, "date": _ymd(clock.now)}
        pending = await client.post("/api/sms/get", data={**form, "messageid": "query-me-00001"})
        clock.advance(5)
        done = await client.post("/api/sms/get", data={**form, "messageid": "query-me-00001"})
        unknown = await client.post("/api/sms/get", data={**form, "messageid": "never-sent-001"})
    assert pending.json()["code"] == "0"
    row = pending.json()["row"]
    assert row["msgid"] == "query-me-00001" and row["phone"] == "8615088800001"
    assert row["dr_status"] == "" and row["dr"] == ""
    assert (done.json()["row"]["dr_status"], done.json()["row"]["dr"]) == ("Success", "DELIVRD")
    assert unknown.json() == {"code": "0", "row": None}


async def test_status_query_with_signed_headers() -> None:
    sim, app, clock = build_app()
    async with asgi_client(app) as client:
        await _send(client, sim, clock, _body(sim, [_item(1, sysMessageId="query-me-00002")]))
        body = f"messageid=query-me-00002&date={_ymd(clock.now)}".encode()
        headers = nx_headers(sim.credentials, body, clock.now, action="query")
        headers["Content-Type"] = "application/x-www-form-urlencoded"
        answer = await client.post("/api/sms/get", content=body, headers=headers)
    assert answer.json()["row"]["msgid"] == "query-me-00002"


@pytest.mark.parametrize(
    ("change", "code"),
    [({"secretkey": "wrong"}, "2"), ({"date": "2024-01-01"}, "1"), ({"date": "20000101"}, "3")],
)
async def test_status_query_errors(change: dict[str, str], code: str) -> None:
    sim, app, clock = build_app()
    creds = sim.credentials
    form = {
        "appkey": creds.nx_app_key,
        "secretkey": creds.nx_secret,
        "date": _ymd(clock.now),
        "messageid": "whatever-0001",
        **change,
    }
    async with asgi_client(app) as client:
        answer = await client.post("/api/sms/get", data=form)
    assert answer.json() == {"code": code, "row": None}
