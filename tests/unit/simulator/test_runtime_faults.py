"""Faults per channel, changed while running (``/_sim/faults``) and on the command line."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from teledispatch.simulator.app import ResponseDropped
from teledispatch.simulator.context import Sim, SimOptions
from teledispatch.simulator.faults import FaultConfig, Faults
from teledispatch.simulator.server import build_parser, options_from_args
from teledispatch.simulator.testing import FakeClock, asgi_client, build_app, volc_headers

from .test_faults import CHANNELS, send_one

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def _set(client: httpx.AsyncClient, body: Any) -> httpx.Response:
    return await client.post("/_sim/faults", content=json.dumps(body).encode())


async def test_channel_outage_starts_and_ends_while_running() -> None:
    sim, app, clock = build_app()
    async with asgi_client(app) as client:
        before = await send_one(client, sim, clock, "nxcloud.sms")
        started = await _set(client, {"channel": "nxcloud.sms", "fail_rate": 1.0})
        during = {ch: (await send_one(client, sim, clock, ch)).status_code for ch in CHANNELS}
        ended = await _set(client, {"channel": "nxcloud.sms", "fail_rate": 0})
        after = await send_one(client, sim, clock, "nxcloud.sms")
        read = (await client.get("/_sim/faults")).json()
    assert before.json()["code"] == 0 and after.json()["code"] == 0
    assert started.status_code == 200 and ended.status_code == 200
    assert during == {
        "nxcloud.sms": 503,
        "uspeedo.sms": 200,
        "volc.vms.append": 200,
        "volc.axn.bind": 200,
    }
    assert started.json()["channels"]["nxcloud.sms"]["fail_rate"] == 1.0
    assert read["overrides"] == {"nxcloud.sms": {"fail_rate": 0.0}}
    assert read["global"]["fail_rate"] == 0.0


async def test_global_change_reaches_every_channel_but_not_its_overrides() -> None:
    sim, app, clock = build_app()
    async with asgi_client(app) as client:
        await _set(client, {"channel": "uspeedo.sms", "fail_rate": 0.0, "fail_status": 502})
        await _set(client, {"fail_rate": 1.0, "fail_status": 504})
        statuses = {ch: (await send_one(client, sim, clock, ch)).status_code for ch in CHANNELS}
        cleared = await _set(client, {"channel": "uspeedo.sms", "clear": True})
        uspeedo = await send_one(client, sim, clock, "uspeedo.sms")
    assert statuses == {
        "nxcloud.sms": 504,
        "uspeedo.sms": 200,
        "volc.vms.append": 504,
        "volc.axn.bind": 504,
    }
    assert cleared.json()["overrides"] == {}
    assert uspeedo.status_code == 504 and uspeedo.json()["RetCode"] == 215400


async def test_chosen_fail_status_keeps_each_channel_body() -> None:
    sim, app, clock = build_app(SimOptions(faults=FaultConfig(fail_rate=1.0, fail_status=502)))
    async with asgi_client(app) as client:
        nx = await send_one(client, sim, clock, "nxcloud.sms")
        vms = await send_one(client, sim, clock, "volc.vms.append")
    assert nx.status_code == 502
    assert nx.json() == {"code": -1, "message": "Bad Gateway", "data": None}
    assert vms.status_code == 502
    assert vms.json()["ResponseMetadata"]["Error"]["Code"] == "BadGateway"


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"not json", "JSON object"),
        (b"[1, 2]", "JSON object"),
        (b"{}", "no fault options"),
        (b'{"fail_rate": 1.5}', "fail_rate must be a share between 0 and 1"),
        (b'{"fail_rate": "lots"}', "fail_rate must be a number"),
        (b'{"fail_rate": true}', "fail_rate must be a number"),
        (b'{"fail_status": 200}', "fail_status must be an HTTP error status"),
        (b'{"tps": 0}', "tps must be a positive integer"),
        (b'{"recipient_cap": "often"}', "recipient cap 'often'"),
        (b'{"uspeedo_shape": "fancy"}', "uspeedo_shape must be one of basic, sdk"),
        (b'{"colour": "red"}', "unknown fault option 'colour'"),
        (b'{"channel": "nxcloud.mms", "fail_rate": 1}', "unknown channel 'nxcloud.mms'"),
        (b'{"seed": 4}', "seed cannot be changed"),
        (b'{"fail_rate": 0.7, "internal_error_rate": 0.7}', "must not exceed 1"),
    ],
)
async def test_bad_body_is_400_naming_the_problem(body: bytes, problem: str) -> None:
    _sim, app, _clock = build_app()
    async with asgi_client(app) as client:
        response = await client.post("/_sim/faults", content=body)
        read = (await client.get("/_sim/faults")).json()
    assert response.status_code == 400
    assert problem in response.json()["error"]
    assert read["global"] == (await _default_snapshot())["global"]  # nothing changed


async def _default_snapshot() -> dict[str, Any]:
    _sim, app, _clock = build_app()
    async with asgi_client(app) as client:
        result: dict[str, Any] = (await client.get("/_sim/faults")).json()
    return result


async def test_reset_restores_the_faults_the_process_started_with() -> None:
    sim, app, clock = build_app(SimOptions(faults=FaultConfig(item_fail_rate=1.0)))
    async with asgi_client(app) as client:
        await _set(client, {"item_fail_rate": 0.0, "latency_ms": 5})
        await client.post("/_sim/reset")
        read = (await client.get("/_sim/faults")).json()
        answer = (await send_one(client, sim, clock, "volc.vms.append")).json()
    assert read["global"]["item_fail_rate"] == 1.0 and read["global"]["latency_ms"] == 0.0
    assert answer["Result"]["FailList"][0]["Type"] == "SIMULATED_FAILURE"


async def test_timeout_holds_then_closes_unprocessed() -> None:
    options = SimOptions(faults=FaultConfig(timeout_rate=1.0, timeout_ms=0))
    sim, app, clock = build_app(options)
    async with asgi_client(app) as client:
        with pytest.raises(ResponseDropped):
            await send_one(client, sim, clock, "volc.vms.append", phone="13700000009")
        await _set(client, {"timeout_rate": 0})
        again = await send_one(client, sim, clock, "volc.vms.append", phone="13700000009")
    first = sim.state.log[0]
    assert (first["channel"], first["code"], first["dropped"]) == (
        "volc.vms.append",
        "timeout",
        True,
    )
    assert first["accepted"] == []
    # The held request changed nothing: the same number is not a duplicate afterwards.
    assert again.json()["Result"]["FailList"] == []


async def test_tps_set_while_running_applies_to_that_channel_only() -> None:
    sim, app, clock = build_app()
    async with asgi_client(app) as client:
        await _set(client, {"channel": "volc.axn.bind", "tps": 1})
        binds = [(await send_one(client, sim, clock, "volc.axn.bind")).status_code for _ in "ab"]
        appends = [
            (await send_one(client, sim, clock, "volc.vms.append")).status_code for _ in "ab"
        ]
    assert binds == [200, 429] and appends == [200, 200]


def test_faults_update_is_all_or_nothing() -> None:
    faults = Faults(FaultConfig(fail_rate=0.5))
    with pytest.raises(ValueError, match="must not exceed 1"):
        faults.update({"internal_error_rate": 0.6}, "nxcloud.sms")
    with pytest.raises(ValueError, match="unknown fault option"):
        faults.update({"colour": "red"})
    assert faults.for_channel("nxcloud.sms") == FaultConfig(fail_rate=0.5)
    assert faults.snapshot()["overrides"] == {}


def test_command_line_takes_global_and_channel_forms() -> None:
    args = build_parser().parse_args(
        [
            "--fail-rate",
            "0.1",
            "--fail-rate",
            "nxcloud.sms=1.0",
            "--latency-ms",
            "uspeedo.sms=250",
            "--recipient-cap",
            "5/1h",
            "--uspeedo-shape",
            "sdk",
            "--nxcloud-plain-items",
        ]
    )
    options = options_from_args(args)
    assert options.faults.fail_rate == 0.1 and options.faults.uspeedo_shape == "sdk"
    assert options.faults.nxcloud_plain_items is True
    assert str(options.faults.recipient_cap) == "5/3600s"
    assert options.channel_faults == {
        "nxcloud.sms": {"fail_rate": 1.0},
        "uspeedo.sms": {"latency_ms": 250.0},
    }
    sim = Sim(options, build_app()[0].credentials, FakeClock())
    assert sim.faults.for_channel("nxcloud.sms").fail_rate == 1.0
    assert sim.faults.for_channel("volc.axn.bind").fail_rate == 0.1


@pytest.mark.parametrize(
    ("argv", "problem"),
    [
        (["--fail-rate", "mms=1"], "unknown channel 'mms'"),
        (["--fail-rate", "nxcloud.sms=2"], "between 0 and 1"),
        (["--fail-rate", "0.6", "--internal-error-rate", "volc.axn.bind=0.6"], "exceed 1"),
    ],
)
def test_command_line_refuses_bad_channel_values(argv: list[str], problem: str) -> None:
    args = build_parser().parse_args(argv)
    with pytest.raises(ValueError, match=problem):
        options_from_args(args)


async def test_vms_refuses_numbers_written_with_plus_86() -> None:
    sim, app, clock = build_app()
    body = json.dumps(
        {"TaskOpenId": "sim-task-1", "PhoneList": [{"Phone": "+8613700000000"}]}
    ).encode()
    creds = sim.credentials
    query, headers = volc_headers(
        creds.vms_access_key,
        creds.vms_secret,
        host="sim.test",
        action="BatchAppend",
        body=body,
        content_type="application/json",
        now=clock.now,
    )
    async with asgi_client(app) as client:
        response = await client.post(f"/?{query}", content=body, headers=headers)
    (entry,) = response.json()["Result"]["FailList"]
    assert (entry["Index"], entry["Type"]) == (0, "INVALID_PHONE_FORMAT")
