"""Fault options, limits and the ``/_sim`` endpoints, for every channel."""

from __future__ import annotations

import json
import tomllib
from urllib.parse import urlencode

import httpx
import pytest
from starlette.types import Receive, Scope, Send

from teledispatch.config import parse_config
from teledispatch.simulator.app import ARRIVAL_EXTENSION, ResponseDropped
from teledispatch.simulator.config_file import render_config
from teledispatch.simulator.context import Sim, SimOptions
from teledispatch.simulator.faults import (
    FaultConfig,
    RecipientCap,
    SlidingWindow,
    parse_recipient_cap,
)
from teledispatch.simulator.state import AXN_PHONE_X, AXN_POOL_NO, Credentials
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


@pytest.mark.parametrize(
    ("channel", "body_check"),
    [
        ("nxcloud.sms", lambda b: b["code"] == -1 and b["data"] is None),
        ("uspeedo.sms", lambda b: b["RetCode"] == 215400),
        (
            "volc.vms.append",
            lambda b: b["ResponseMetadata"]["Error"]["Code"] == "ServiceUnavailable",
        ),
        ("volc.axn.bind", lambda b: b["ResponseMetadata"]["Error"]["Code"] == "ServiceUnavailable"),
    ],
)
async def test_fail_rate_answers_503_with_channel_body(channel: str, body_check: object) -> None:
    sim, app, clock = build_app(SimOptions(faults=FaultConfig(fail_rate=1.0)))
    async with asgi_client(app) as client:
        response = await send_one(client, sim, clock, channel)
        log = (await client.get("/_sim/requests")).json()
    assert response.status_code == 503
    assert callable(body_check) and body_check(response.json())
    assert log[0]["http_status"] == 503 and log[0]["accepted"] == []


@pytest.mark.parametrize("channel", CHANNELS)
async def test_internal_error_rate_answers_500(channel: str) -> None:
    sim, app, clock = build_app(SimOptions(faults=FaultConfig(internal_error_rate=1.0)))
    async with asgi_client(app) as client:
        response = await send_one(client, sim, clock, channel)
    assert response.status_code == 500
    if channel.startswith("volc"):
        assert response.json()["ResponseMetadata"]["Error"]["Code"] == "InternalError"


async def test_fail_rate_share_is_roughly_respected() -> None:
    sim, app, clock = build_app(SimOptions(faults=FaultConfig(fail_rate=0.3, seed=3)))
    async with asgi_client(app) as client:
        statuses = [
            (await send_one(client, sim, clock, "nxcloud.sms")).status_code for _ in range(300)
        ]
    share = statuses.count(503) / len(statuses)
    assert 0.2 < share < 0.4 and set(statuses) == {200, 503}


@pytest.mark.parametrize("channel", CHANNELS)
async def test_item_fail_rate_fails_items_in_channel_shape(channel: str) -> None:
    sim, app, clock = build_app(SimOptions(faults=FaultConfig(item_fail_rate=1.0)))
    async with asgi_client(app) as client:
        response = await send_one(client, sim, clock, channel)
        log = (await client.get("/_sim/requests")).json()
    assert not _accepted(response, channel)
    assert log[0]["accepted"] == []
    body = response.json()
    if channel == "nxcloud.sms":
        assert body["code"] == 0 and body["data"][0]["status"] == "Failure"
        assert body["data"][0]["message"]
    elif channel == "uspeedo.sms":
        assert body["RetCode"] == 0 and body["FailedTargetPhones"][0]["FailureReason"]
    elif channel == "volc.vms.append":
        assert body["Result"]["FailList"][0]["Type"] == "SIMULATED_FAILURE"
    else:
        assert response.status_code == 400
        assert body["ResponseMetadata"]["Error"]["Code"] == "OperationDenied"


@pytest.mark.parametrize("channel", CHANNELS)
async def test_tps_limit_per_sliding_second(channel: str) -> None:
    sim, app, clock = build_app(SimOptions(faults=FaultConfig(tps=3)))
    async with asgi_client(app) as client:
        first = [await send_one(client, sim, clock, channel) for _ in range(3)]
        clock.advance(0.5)
        throttled = await send_one(client, sim, clock, channel)
        clock.advance(0.49)
        still = await send_one(client, sim, clock, channel)
        clock.advance(0.02)  # the first three are now more than 1 s old
        again = await send_one(client, sim, clock, channel)
    assert all(_accepted(r, channel) for r in first)
    assert _accepted(again, channel)
    for response in (throttled, still):
        if channel == "nxcloud.sms":
            assert response.status_code == 200
            assert response.json() == {"code": 13008, "message": "TPS limit exceeded", "data": None}
        else:
            assert response.status_code == 429
            assert response.headers["retry-after"] == "1"
        if channel.startswith("volc"):
            assert response.json()["ResponseMetadata"]["Error"]["Code"] == "FlowLimitExceeded"


async def test_tps_is_counted_per_channel() -> None:
    sim, app, clock = build_app(SimOptions(faults=FaultConfig(tps=1)))
    async with asgi_client(app) as client:
        results = [await send_one(client, sim, clock, channel) for channel in CHANNELS]
    assert all(_accepted(r, c) for r, c in zip(results, CHANNELS, strict=True))


@pytest.mark.parametrize("channel", CHANNELS)
async def test_recipient_cap(channel: str) -> None:
    cap = RecipientCap(2, 10.0)
    sim, app, clock = build_app(SimOptions(faults=FaultConfig(recipient_cap=cap)))
    async with asgi_client(app) as client:
        allowed = []
        for _ in range(2):
            allowed.append(await send_one(client, sim, clock, channel, phone="13711112222"))
            clock.advance(1)
            # Volcengine remembers appended numbers / bindings: reset that state, not the cap.
            sim.state.vms_tasks["sim-task-1"].clear()
            sim.state.axn_bindings.clear()
        refused = await send_one(client, sim, clock, channel, phone="13711112222")
        other = await send_one(client, sim, clock, channel, phone="13733334444")
        clock.advance(8.5)  # the first message is now out of the 10 s window
        sim.state.vms_tasks["sim-task-1"].clear()
        sim.state.axn_bindings.clear()
        later = await send_one(client, sim, clock, channel, phone="13711112222")
    assert all(_accepted(r, channel) for r in allowed)
    assert not _accepted(refused, channel)
    assert _accepted(other, channel) and _accepted(later, channel)
    body = refused.json()
    if channel == "nxcloud.sms":
        assert "13007" in body["data"][0]["message"] and body["code"] == 0
    elif channel == "uspeedo.sms":
        assert "Frequency" in body["FailedTargetPhones"][0]["FailureReason"]
    elif channel == "volc.vms.append":
        assert body["Result"]["FailList"][0]["Type"] == "FREQUENCY_LIMIT"
    else:
        assert body["ResponseMetadata"]["Error"]["Code"] == "QuotaExceeded"


@pytest.mark.parametrize("channel", CHANNELS)
async def test_drop_response_processes_then_gives_no_answer(channel: str) -> None:
    sim, app, clock = build_app(SimOptions(faults=FaultConfig(drop_response_rate=1.0)))
    async with asgi_client(app) as client:
        with pytest.raises(ResponseDropped):
            await send_one(client, sim, clock, channel, phone="13755556666")
        log = (await client.get("/_sim/requests")).json()
    assert log[0]["dropped"] is True
    assert len(log[0]["accepted"]) == 1 and log[0]["http_status"] == 200


async def test_drop_response_only_after_processing_not_on_auth_failure() -> None:
    _sim, app, _clock = build_app(SimOptions(faults=FaultConfig(drop_response_rate=1.0)))
    async with asgi_client(app) as client:
        response = await client.post("/v1/sms/multi/mt", content=b"{}")
    assert response.json()["code"] == 1001


async def test_seed_makes_faults_reproducible() -> None:
    async def run() -> list[bool]:
        sim, app, clock = build_app(SimOptions(faults=FaultConfig(item_fail_rate=0.5, seed=11)))
        async with asgi_client(app) as client:
            return [
                _accepted(await send_one(client, sim, clock, "volc.vms.append"), "volc.vms.append")
                for _ in range(40)
            ]

    first, second = await run(), await run()
    assert first == second and 5 < sum(first) < 35


async def test_requests_log_since_reset_and_health() -> None:
    sim, app, clock = build_app()
    async with asgi_client(app) as client:
        for channel in CHANNELS:
            await send_one(client, sim, clock, channel)
        everything = (await client.get("/_sim/requests")).json()
        tail = (await client.get("/_sim/requests", params={"since": 3})).json()
        past_end = (await client.get("/_sim/requests", params={"since": 99})).json()
        bad = await client.get("/_sim/requests", params={"since": "x"})
        health = await client.get("/_sim/health")
        reset = await client.post("/_sim/reset")
        after = (await client.get("/_sim/requests")).json()
        # Reset also forgets provider state: the same number may be appended again.
        await send_one(client, sim, clock, "volc.vms.append", phone="13799990000")
        await client.post("/_sim/reset")
        again = await send_one(client, sim, clock, "volc.vms.append", phone="13799990000")
    assert [e["channel"] for e in everything] == CHANNELS
    assert tail == everything[3:] and past_end == []
    assert bad.status_code == 400
    assert health.status_code == 200 and health.json()["requests"] == 4
    assert reset.status_code == 200 and after == []
    assert _accepted(again, "volc.vms.append")


async def test_arrival_stamp_is_the_logged_time_and_the_tps_clock() -> None:
    """The server stamps each request when its first bytes arrive; handlers use that stamp
    (not the clock when they run) for the log and for ``--tps``."""
    sim, app, clock = build_app(SimOptions(faults=FaultConfig(tps=1)))
    stamps = iter([clock.now - 2.0, clock.now - 0.5, clock.now - 0.2])

    async def stamped(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/v1/"):
            scope = {**scope, "extensions": {ARRIVAL_EXTENSION: {"t": next(stamps)}}}
        await app(scope, receive, send)

    transport = httpx.ASGITransport(app=stamped)
    async with httpx.AsyncClient(transport=transport, base_url="http://sim.test") as client:
        codes = [(await send_one(client, sim, clock, "nxcloud.sms")).json()["code"] for _ in "abc"]
    # 1 per second: -0.5 is 1.5 s after -2.0 (admitted); -0.2 is 0.3 s after -0.5 (throttled),
    # though the fake clock never moved.
    assert codes == [0, 0, 13008]
    assert [e["t"] for e in sim.state.log] == [clock.now - 2.0, clock.now - 0.5, clock.now - 0.2]


def test_parse_recipient_cap() -> None:
    assert parse_recipient_cap("5/1h") == RecipientCap(5, 3600.0)
    assert parse_recipient_cap("2/10s") == RecipientCap(2, 10.0)
    assert parse_recipient_cap("3/m") == RecipientCap(3, 60.0)
    for bad in ("5", "0/1h", "5/1x", "a/1h"):
        with pytest.raises(ValueError):
            parse_recipient_cap(bad)


def test_sliding_window_does_not_count_refusals() -> None:
    window = SlidingWindow(2, 1.0)
    assert [window.admit("k", t) for t in (0.0, 0.1, 0.2, 0.9)] == [True, True, False, False]
    assert window.admit("k", 1.01) is True  # only admitted events (0.0, 0.1) age out
    assert window.admit("other", 0.5) is True


def test_sliding_window_checks_late_stamps_against_every_window() -> None:
    """Requests are stamped on arrival but handled when complete, so stamps can come slightly
    out of order: a late one must fit every window that would hold it."""
    window = SlidingWindow(2, 1.0)
    assert window.admit("k", 1.0) and window.admit("k", 1.9)
    assert not window.admit("k", 0.95)  # (0.9, 1.9] would hold 0.95, 1.0 and 1.9
    assert window.admit("k", 0.5)  # the windows holding 0.5 end at 0.5 or 1.0: one event each
    assert not window.admit("k", 1.45)  # (0.45, 1.45] holds 0.5 and 1.0
    assert window.admit("k", 2.4)  # (1.4, 2.4] holds 1.9 only


def test_fault_config_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        FaultConfig(fail_rate=1.5)
    with pytest.raises(ValueError):
        FaultConfig(fail_rate=0.6, internal_error_rate=0.6)
    with pytest.raises(ValueError):
        FaultConfig(tps=0)


def test_written_config_loads_with_the_project_config_loader() -> None:
    creds = Credentials.generate(5)
    text = render_config("http://127.0.0.1:1234", creds, SimOptions())
    data = tomllib.loads(text)
    accounts = parse_config(data)
    assert {a.name: a.channel for a in accounts.values()} == {
        "nxcloud": "nxcloud.sms",
        "uspeedo": "uspeedo.sms",
        "volc-vms": "volc.vms.append",
        "volc-axn": "volc.axn.bind",
    }
    assert accounts["nxcloud"].app_key == creds.nx_app_key
    assert accounts["nxcloud"].secret.get_secret_value() == creds.nx_secret
    assert accounts["volc-axn"].region == "cn-north-1" and accounts["volc-axn"].service == "vms"
    assert all(a.base_url == "http://127.0.0.1:1234" for a in accounts.values())
    sim_table = data["simulator"]
    assert sim_table["url"] == "http://127.0.0.1:1234"
    assert sim_table["vms_task_open_ids"] == ["sim-task-1", "sim-task-2"]
    assert sim_table["axn_number_pool_no"] == AXN_POOL_NO
    assert sim_table["axn_phone_x"] == list(AXN_PHONE_X)


def test_credentials_random_unless_seeded_and_secrets_not_in_repr() -> None:
    assert Credentials.generate(1) == Credentials.generate(1)
    assert Credentials.generate() != Credentials.generate()
    creds = Credentials.generate(1)
    for secret in (creds.nx_secret, creds.us_secret, creds.vms_secret, creds.axn_secret):
        assert secret not in repr(creds)


def test_message_records_are_not_walked_by_the_cyclic_collector() -> None:
    """A full collection must not walk every message ever accepted: while it runs, arriving
    requests wait to be stamped (100-300 ms pauses at 60k messages on a busy machine)."""
    import gc

    from teledispatch.simulator.state import NxMessage, SimState, UsTarget

    state = SimState(1)
    for i in range(100):
        state.add_nx_message(f"m{i}", NxMessage("8613", "hi", "", float(i), i + 1.0, True))
    state.add_us_session("s", [UsTarget("8613", 1.0, 2.0, True)])
    gc.collect()
    stored = [*state._nx_messages.values(), *state._us_sessions["s"]]
    assert stored and not any(gc.is_tracked(r) for r in stored)
    assert state.nx_message("m7") == NxMessage("8613", "hi", "", 7.0, 8.0, True)
    assert state.us_session("s") == [UsTarget("8613", 1.0, 2.0, True)]
