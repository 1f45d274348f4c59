"""Provider HTTP: the :class:`Transport` interface and :class:`HttpxTransport`, the one real one,
which turns httpx's failures into our error classes (tests use ``worker.testing.MockTransport``).

The split that matters is whether the request may have left: a refused connection or a connect
timeout provably sent nothing (retry freely); a failure after the request was written may have
been acted on (ambiguous: reconcile, never blindly resend).
"""

from __future__ import annotations

import functools
import logging
import os
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

from teledispatch.channels.base import HttpRequest
from teledispatch.errors import AmbiguousError, MalformedResponseError, NotSentError

#: Bodies larger than this are not read: no provider answer is legitimately this big.
MAX_BODY = 8 << 20

#: httpcore's trace event once the whole request body is on the socket (``http11.`` or
#: ``http2.`` prefix): the moment the request has left, as far as this process can know.
BODY_WRITTEN = "send_request_body.complete"

log = logging.getLogger("teledispatch.transport")


@dataclass(frozen=True, slots=True)
class HttpResponse:
    status: int
    headers: dict[str, str]
    body: bytes
    #: ``time.perf_counter()`` once the answer's status line and headers were read (None: not
    #: known). The adaptive margin measures write → this, not → the whole body read.
    head_at: float | None = None


class Transport(Protocol):
    """What the worker needs of HTTP; the error classes carry whether a request may have left."""

    def warm(self) -> None:
        """Get ready to send at once (done before waiting for a rate slot)."""

    def send(
        self,
        request: HttpRequest,
        timeout_s: float,
        on_written: Callable[[], None] | None = None,
    ) -> HttpResponse:
        """Send and read the answer. ``on_written()`` runs once the body is written, before
        the answer is read (never if nothing was written). Raises ``NotSentError`` if the
        request provably never left, ``AmbiguousError`` if it may have."""
        ...


@functools.cache
def ssl_context() -> ssl.SSLContext:
    """The CA store, loaded once for the process tree: loading it reads every certificate,
    which each pool process otherwise did in its first send."""
    return httpx.create_ssl_context()


def preload() -> None:
    """Before the pool forks (``worker/app.py``): import what a client imports on creation
    (httpcore, h11, and trio where installed) and load the CA store, so that no pool process
    pays them between its first rate slot and the request. Opens no socket."""
    import httpcore  # noqa: F401  (httpx imports it only when a client is made)

    ssl_context()


class HttpxTransport:
    """A keep-alive client per process (never shared across a fork)."""

    def __init__(self) -> None:
        self._client: httpx.Client | None = None
        self._pid = 0

    def _get(self) -> httpx.Client:
        if self._client is None or self._pid != os.getpid():
            self._client = httpx.Client(
                limits=httpx.Limits(max_connections=100, max_keepalive_connections=20),
                follow_redirects=False,
                verify=ssl_context(),
            )
            self._pid = os.getpid()
        return self._client

    def warm(self) -> None:
        """Build the client now: the first one in a process costs tens of milliseconds (TLS
        context, pool), which must not fall between a rate slot and the request it was for."""
        self._get()

    def send(
        self,
        request: HttpRequest,
        timeout_s: float,
        on_written: Callable[[], None] | None = None,
    ) -> HttpResponse:
        """Send and read the answer; ``on_written()`` runs as soon as the body is written
        (before the answer is read), for the rate limiter's departure time."""
        client = self._get()
        timeout = httpx.Timeout(timeout_s, connect=min(timeout_s, 5.0))
        extensions = {"trace": _body_written_hook(on_written)} if on_written else None
        try:
            with client.stream(
                request.method,
                request.url,
                headers=dict(request.headers),
                content=request.body,
                timeout=timeout,
                extensions=extensions,
            ) as resp:
                head_at = time.perf_counter()
                chunks: list[bytes] = []
                size = 0
                for chunk in resp.iter_bytes():
                    size += len(chunk)
                    if size > MAX_BODY:
                        raise MalformedResponseError(
                            f"response body over {MAX_BODY} bytes", code="huge_body"
                        )
                    chunks.append(chunk)
                body = b"".join(chunks)
                return HttpResponse(resp.status_code, dict(resp.headers), body, head_at)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            raise NotSentError(f"{type(exc).__name__}: {exc}", code="connect") from None
        except httpx.TimeoutException as exc:
            raise AmbiguousError(f"{type(exc).__name__} after sending", code="timeout") from None
        except httpx.TransportError as exc:
            raise AmbiguousError(
                f"{type(exc).__name__} after sending: {exc}", code="transport"
            ) from None

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


def _body_written_hook(on_written: Callable[[], None]) -> Callable[[str, dict[str, Any]], None]:
    """An httpcore trace callback calling ``on_written`` at the end of the body. It runs inside
    httpcore's request handling, where an exception would fail the request: none escapes."""

    def trace(event: str, info: dict[str, Any]) -> None:
        if event.endswith(BODY_WRITTEN):
            try:
                on_written()
            except Exception:
                log.exception("on_written callback failed")

    return trace
