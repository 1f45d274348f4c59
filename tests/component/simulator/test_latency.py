"""Latency faults on the wall clock: answers are delayed, yet requests overlap."""

from __future__ import annotations

import asyncio
import time

import pytest

from teledispatch.simulator.context import SimOptions
from teledispatch.simulator.faults import FaultConfig
from teledispatch.simulator.testing import asgi_client, build_app
from tests.unit.simulator.test_faults import send_one

pytestmark = pytest.mark.anyio
LATENCY_S = 0.2
REQUESTS = 20


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_latency_delays_answers_but_requests_overlap() -> None:
    sim, app, clock = build_app(SimOptions(faults=FaultConfig(latency_ms=int(LATENCY_S * 1000))))
    async with asgi_client(app) as client:
        started = time.monotonic()
        one = await send_one(client, sim, clock, "nxcloud.sms")
        single = time.monotonic() - started
        started = time.monotonic()
        many = await asyncio.gather(
            *(send_one(client, sim, clock, "uspeedo.sms") for _ in range(REQUESTS))
        )
        overlapped = time.monotonic() - started
    assert one.status_code == 200 and all(r.status_code == 200 for r in many)
    assert single >= LATENCY_S - 0.01  # a lower bound: asyncio may wake one tick early
    # Queued one after another they could not finish before REQUESTS x the latency.
    assert overlapped < REQUESTS * LATENCY_S
