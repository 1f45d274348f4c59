"""Finding or starting a Redis for the demo and the tests, so they need nothing but Python.

Order: the Redis at ``REDIS_URL`` if it answers; else a ``redis-server`` from PATH on a free
loopback port; else fakeredis's TCP server in a child process. The last one is good enough
for a demo but is not real Redis, so it is always announced.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import redis

from teledispatch.cli.extras import require_extra


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def redis_ping(url: str, timeout: float = 1.0) -> bool:
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
        return bool(client.ping())
    except (redis.RedisError, OSError, ValueError):
        return False


def wait_until(
    predicate: Callable[[], bool], timeout: float, what: str, interval: float = 0.05
) -> None:
    """Poll ``predicate`` until true; bounded, with a message naming the wait."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")


@dataclass
class RedisService:
    url: str
    #: "existing", "redis-server" or "fakeredis".
    kind: str
    process: subprocess.Popen[bytes] | None = None

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def _start(kind: str, argv: list[str], port: int) -> RedisService:
    """Run ``argv`` (a server on ``port``) and wait until it answers PING."""
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    service = RedisService(url, kind, proc)
    try:
        wait_until(lambda: redis_ping(url, 0.2), 20, f"{kind} on port {port}")
    except TimeoutError:
        service.stop()
        raise
    return service


def start_redis_server(port: int | None = None) -> RedisService:
    port = port or free_port()
    exe = shutil.which("redis-server")
    if exe is None:
        raise FileNotFoundError("redis-server is not on PATH")
    argv = [exe, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no"]
    return _start("redis-server", argv, port)


def start_fakeredis(port: int | None = None) -> RedisService:
    # Checked here: a child without fakeredis would die unseen and we would wait 20 s for it.
    require_extra("embedded", "an embedded Redis (no Redis reachable, no redis-server on PATH)")
    port = port or free_port()
    code = (
        "import sys; from fakeredis import TcpFakeServer; "
        "s = TcpFakeServer(('127.0.0.1', int(sys.argv[1])), server_type='redis'); "
        "s.serve_forever()"
    )
    return _start("fakeredis", [sys.executable, "-c", code, str(port)], port)


def ensure_redis(url: str | None = None, *, private: bool = False) -> RedisService:
    """A reachable Redis. ``private`` skips an existing one (tests that restart Redis)."""
    url = url or os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    if not private and redis_ping(url):
        return RedisService(url, "existing")
    with contextlib.suppress(FileNotFoundError, TimeoutError):
        return start_redis_server()
    return start_fakeredis()


@contextlib.contextmanager
def redis_service(url: str | None = None, *, private: bool = False) -> Iterator[RedisService]:
    service = ensure_redis(url, private=private)
    try:
        yield service
    finally:
        service.stop()
