"""Client-side helpers for talking to the simulator: signed headers and a controllable clock.

These build requests the way a correct client would, so tests can then break them one byte at a
time. They are deliberately separate from the worker's adapters (see ``nxcloud_sign``).
"""

from __future__ import annotations

import base64
import time
from collections.abc import Mapping

import httpx
from starlette.applications import Starlette

from teledispatch.simulator.app import create_app
from teledispatch.simulator.context import Sim, SimOptions
from teledispatch.simulator.nxcloud_sign import nxcloud_sign
from teledispatch.simulator.state import Credentials
from teledispatch.simulator.volc_sign import sign_headers


class FakeClock:
    """A clock tests move by hand, so windows and expiries need no sleeping."""

    def __init__(self, now: float = 1_750_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def nx_headers(
    creds: Credentials,
    body: bytes,
    now: float | None = None,
    *,
    action: str = "mtsend",
    biz_type: str = "3",
) -> dict[str, str]:
    ts = str(int((time.time() if now is None else now) * 1000))
    params = {"accessKey": creds.nx_access_key, "action": action, "bizType": biz_type, "ts": ts}
    return {
        **params,
        "sign": nxcloud_sign(params, body, creds.nx_secret),
        "Content-Type": "application/json",
    }


def basic_auth(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def x_date(now: float) -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))


def volc_headers(
    access_key: str,
    secret: str,
    *,
    host: str,
    action: str,
    body: bytes,
    content_type: str,
    now: float | None = None,
    region: str = "cn-north-1",
    extra_query: Mapping[str, str] | None = None,
) -> tuple[str, dict[str, str]]:
    """``(query string, headers)`` for ``POST /?Action=...&Version=2022-01-01``."""
    pairs = {"Action": action, "Version": "2022-01-01", **(extra_query or {})}
    query = "&".join(f"{k}={v}" for k, v in pairs.items())
    headers = sign_headers(
        access_key=access_key,
        secret=secret,
        method="POST",
        host=host,
        path="/",
        raw_query=query,
        body=body,
        x_date=x_date(time.time() if now is None else now),
        region=region,
        service="vms",
        content_type=content_type,
    )
    return query, headers


def build_app(
    options: SimOptions | None = None,
    *,
    seed: int = 7,
    clock: FakeClock | None = None,
    dr_transport: httpx.AsyncBaseTransport | None = None,
) -> tuple[Sim, Starlette, FakeClock]:
    """A simulator on a fake clock with fixed credentials, for in-process ASGI tests."""
    clock = clock or FakeClock()
    sim = Sim(options or SimOptions(), Credentials.generate(seed), clock)
    return sim, create_app(sim, dr_transport), clock


def asgi_client(app: Starlette, host: str = "sim.test") -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url=f"http://{host}", timeout=10.0
    )
