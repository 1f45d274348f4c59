"""``HttpxTransport.send(..., on_written)``: the hook fires once the body is on the socket,
before the answer is read, with the installed httpx/httpcore (a renamed trace event would
silently leave every departure pending until its lease).

The server answers only after the hook has fired: if the hook came late (after the response)
or never, the request would time out instead of succeeding.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from teledispatch.channels.base import HttpRequest
from teledispatch.errors import NotSentError
from teledispatch.worker.transport import HttpxTransport

WAIT_S = 5.0


@pytest.fixture
def server() -> Iterator[tuple[str, threading.Event, list[bytes]]]:
    written = threading.Event()
    bodies: list[bytes] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            bodies.append(self.rfile.read(int(self.headers["Content-Length"])))
            ok = written.wait(WAIT_S)  # the client's hook must run before any answer exists
            self.send_response(200 if ok else 504)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", written, bodies
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=WAIT_S)


def post(url: str) -> HttpRequest:
    return HttpRequest("POST", url + "/send", {"Content-Type": "text/plain"}, b"x" * 70_000)


def test_hook_fires_once_after_the_body_and_before_the_answer(
    server: tuple[str, threading.Event, list[bytes]],
) -> None:
    url, written, bodies = server
    calls: list[int] = []

    stamps: list[float] = []

    def on_written() -> None:
        calls.append(1)
        stamps.append(time.perf_counter())
        written.set()

    transport = HttpxTransport()
    try:
        response = transport.send(post(url), timeout_s=WAIT_S * 2, on_written=on_written)
    finally:
        transport.close()
    returned = time.perf_counter()
    assert (response.status, response.body) == (200, b"ok")
    assert len(calls) == 1
    assert bodies == [b"x" * 70_000]
    # The answer's head is stamped between the write and the return (the margin's sample).
    assert response.head_at is not None and stamps[0] <= response.head_at <= returned


def test_a_failing_hook_does_not_fail_the_send(
    server: tuple[str, threading.Event, list[bytes]], caplog: pytest.LogCaptureFixture
) -> None:
    url, written, _ = server

    def on_written() -> None:
        written.set()
        raise RuntimeError("redis is down")

    transport = HttpxTransport()
    try:
        response = transport.send(post(url), timeout_s=WAIT_S * 2, on_written=on_written)
    finally:
        transport.close()
    assert response.status == 200
    assert "on_written callback failed" in caplog.text


def test_no_hook_when_nothing_was_written() -> None:
    calls: list[None] = []
    hook: Callable[[], None] = lambda: calls.append(None)  # noqa: E731
    transport = HttpxTransport()
    try:
        with pytest.raises(NotSentError):
            transport.send(post("http://127.0.0.1:9"), timeout_s=2.0, on_written=hook)
    finally:
        transport.close()
    assert calls == []
