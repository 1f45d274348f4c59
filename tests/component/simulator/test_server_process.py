"""The simulator as a real process: startup handshake, signed request, dropped responses, DRs."""

from __future__ import annotations

import json
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
import tomllib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest

from teledispatch.simulator.nxcloud_sign import nxcloud_sign

ROOT = Path(__file__).resolve().parents[3]
STARTUP_TIMEOUT_S = 20.0


class Simulator:
    def __init__(self, proc: subprocess.Popen[str], url: str, config: dict[str, Any]) -> None:
        self.proc, self.url, self.config = proc, url, config


def _wait_for_line(proc: subprocess.Popen[str], prefix: str, timeout: float) -> str:
    """Read stdout on a thread so the wait is bounded even if the child prints nothing."""
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"no {prefix!r} line within {timeout} s")
        line = lines.get(timeout=remaining)
        if line is None:
            raise RuntimeError(f"simulator exited with {proc.wait(5)} before listening")
        if line.startswith(prefix):
            return line[len(prefix) :].strip()


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Any]:
    procs: list[subprocess.Popen[str]] = []

    def _start(*args: str) -> Simulator:
        config_path = tmp_path / f"sim{len(procs)}.toml"
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "simulator",
                "--port",
                "0",
                "--write-config",
                str(config_path),
                *args,
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        procs.append(proc)
        url = _wait_for_line(proc, "simulator listening on ", STARTUP_TIMEOUT_S)
        config = tomllib.loads(config_path.read_text())
        assert config_path.stat().st_mode & 0o077 == 0, "config holds secrets: owner-only"
        return Simulator(proc, url, config)

    yield _start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()


def _nx_request(
    config: dict[str, Any], items: list[dict[str, Any]]
) -> tuple[bytes, dict[str, str]]:
    account = config["accounts"]["nxcloud"]
    body = json.dumps({"appKey": account["app_key"], "items": items}).encode()
    params = {
        "accessKey": account["access_key"],
        "action": "mtsend",
        "bizType": "3",
        "ts": str(int(time.time() * 1000)),
    }
    headers = {
        **params,
        "sign": nxcloud_sign(params, body, account["secret"]),
        "Content-Type": "application/json",
    }
    return body, headers


def test_starts_writes_config_and_accepts_signed_nxcloud_request(start: Any) -> None:
    sim = start()
    assert sim.config["simulator"]["url"] == sim.url
    assert sim.config["accounts"]["nxcloud"]["base_url"] == sim.url
    body, headers = _nx_request(
        sim.config, [{"phone": "8615088888888", "content": "hi", "sysMessageId": "it-000000001"}]
    )
    with httpx.Client(base_url=sim.url, timeout=10) as client:
        answer = client.post("/v1/sms/multi/mt", content=body, headers=headers).json()
        log = client.get("/_sim/requests").json()
    assert answer == {
        "code": 0,
        "message": "Success",
        "data": [{"phone": "8615088888888", "messageid": "it-000000001", "status": "Success"}],
    }
    assert log[0]["accepted"] == ["it-000000001"] and log[0]["dropped"] is False
    sim.proc.send_signal(signal.SIGTERM)
    assert sim.proc.wait(10) == 0


def test_dropped_response_closes_connection_after_accepting(start: Any) -> None:
    sim = start("--drop-response-rate", "1")
    body, headers = _nx_request(
        sim.config, [{"phone": "8615088888888", "content": "hi", "sysMessageId": "it-000000002"}]
    )
    with httpx.Client(base_url=sim.url, timeout=10) as client:
        with pytest.raises(httpx.RemoteProtocolError):
            client.post("/v1/sms/multi/mt", content=body, headers=headers)
        log = client.get("/_sim/requests").json()
    assert log == [
        {**log[0], "accepted": ["it-000000002"], "dropped": True, "http_status": 200, "code": 0}
    ]


def test_logged_time_is_when_the_request_began_to_arrive(start: Any) -> None:
    """A request that trickles in is logged at its first bytes (not when its headers are
    complete and the handler starts): the provider counts arrivals, and the stamp must not
    include the simulator's own delays."""
    sim = start()
    body, headers = _nx_request(
        sim.config, [{"phone": "8615088888888", "content": "hi", "sysMessageId": "it-000000004"}]
    )
    host, port = sim.url.removeprefix("http://").split(":")
    head = f"POST /v1/sms/multi/mt HTTP/1.1\r\nHost: {host}\r\nContent-Length: {len(body)}\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "Connection: close\r\n\r\n"
    with socket.create_connection((host, int(port)), timeout=10) as conn:
        began = time.time()
        request = head.encode() + body
        conn.sendall(request[:40])  # the request line and part of the headers
        time.sleep(0.5)  # the gap being measured, not a synchronisation
        rest_sent = time.time()
        conn.sendall(request[40:])
        assert conn.recv(4096).startswith(b"HTTP/1.1 200")
    with httpx.Client(base_url=sim.url, timeout=10) as client:
        (entry,) = client.get("/_sim/requests").json()
    assert entry["accepted"] == ["it-000000004"]
    assert began <= entry["t"] < rest_sent - 0.3


class _DrSink(BaseHTTPRequestHandler):
    received: queue.Queue[dict[str, list[str]]] = queue.Queue()

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        self.received.put(parse_qs(self.rfile.read(length).decode()))
        self.send_response(200)
        self.send_header("Content-Length", "7")
        self.end_headers()
        self.wfile.write(b"success")

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_delivery_report_reaches_a_real_http_receiver(start: Any) -> None:
    sink = ThreadingHTTPServer(("127.0.0.1", 0), _DrSink)
    threading.Thread(target=sink.serve_forever, daemon=True).start()
    try:
        sim = start("--dr-delay-ms", "50")
        dr_url = f"http://127.0.0.1:{sink.server_address[1]}/dr"
        body, headers = _nx_request(
            sim.config,
            [
                {
                    "phone": "8615088888888",
                    "content": "hi",
                    "sysMessageId": "it-000000003",
                    "drUrl": dr_url,
                }
            ],
        )
        with httpx.Client(base_url=sim.url, timeout=10) as client:
            assert (
                client.post("/v1/sms/multi/mt", content=body, headers=headers).json()["code"] == 0
            )
        form = _DrSink.received.get(timeout=10)
    finally:
        sink.shutdown()
        sink.server_close()
    assert form["messageid"] == ["it-000000003"]
    assert form["status"] == ["2"] and form["result"] == ["DELIVRD"]


def test_bad_option_exits_with_usage_error() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "simulator", "--fail-rate", "2"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2 and "between 0 and 1" in result.stderr


def test_outage_per_channel_starts_and_ends_without_restart(start: Any) -> None:
    sim = start("--fail-rate", "nxcloud.sms=1.0", "--latency-ms", "uspeedo.sms=1")

    def send(n: int) -> httpx.Response:
        body, headers = _nx_request(
            sim.config,
            [{"phone": "8615088888888", "content": "hi", "sysMessageId": f"it-out-{n:06d}"}],
        )
        return client.post("/v1/sms/multi/mt", content=body, headers=headers)

    with httpx.Client(base_url=sim.url, timeout=10) as client:
        during = send(1)
        read = client.get("/_sim/faults").json()
        bad = client.post("/_sim/faults", json={"channel": "nxcloud.sms", "fail_rate": "x"})
        ended = client.post("/_sim/faults", json={"channel": "nxcloud.sms", "fail_rate": 0})
        after = send(2)
        log = client.get("/_sim/requests").json()
    assert during.status_code == 503 and during.json()["code"] == -1
    assert read["overrides"] == {
        "nxcloud.sms": {"fail_rate": 1.0},
        "uspeedo.sms": {"latency_ms": 1.0},
    }
    assert read["global"]["fail_rate"] == 0.0
    assert bad.status_code == 400 and "fail_rate must be a number" in bad.json()["error"]
    assert ended.status_code == 200
    assert ended.json()["channels"]["nxcloud.sms"]["fail_rate"] == 0.0
    assert after.status_code == 200 and after.json()["data"][0]["status"] == "Success"
    assert [(e["http_status"], e["accepted"]) for e in log] == [(503, []), (200, ["it-out-000002"])]


def test_bad_channel_option_exits_with_usage_error() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "simulator", "--fail-rate", "nxcloud.mms=1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2 and "unknown channel 'nxcloud.mms'" in result.stderr
