"""Test doubles for the worker's seams, shipped with it as httpx ships ``MockTransport``.

:class:`MockTransport` answers every request with a handler function; :class:`FakeClock` is a
``Context.clock`` that moves only when told to.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from teledispatch.channels.base import HttpRequest
from teledispatch.worker.transport import HttpResponse

#: Answers one request, or raises one of ``teledispatch.errors`` as the real transport would.
Handler = Callable[[HttpRequest], HttpResponse]


class MockTransport:
    """A :class:`~teledispatch.worker.transport.Transport` that calls ``handler`` for every
    request and keeps each one in :attr:`requests`.

    The body counts as written before the handler runs, as on the wire, so ``on_written``
    fires first; it is not called if the handler is never reached.
    """

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: list[HttpRequest] = []

    def warm(self) -> None:
        pass

    def send(
        self,
        request: HttpRequest,
        timeout_s: float,
        on_written: Callable[[], None] | None = None,
    ) -> HttpResponse:
        self.requests.append(request)
        if on_written is not None:
            on_written()
        return self.handler(request)


class FakeClock:
    """Epoch seconds that stand still until :meth:`advance` (starts at the real time, so rows
    written by code that reads the real clock are due as usual)."""

    def __init__(self, start: float | None = None) -> None:
        self.now = time.time() if start is None else start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
