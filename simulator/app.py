"""The ASGI app: routes shaped like the real hosts, plus ``/_sim/*`` for tests and benchmarks.

Handlers do all checking and state changes synchronously right after the body arrives, then
apply ``--latency-ms`` with ``asyncio.sleep`` so slow answers overlap instead of queueing.
Faults are read per request, so ``POST /_sim/faults`` takes effect on the next request
(requests already waiting out their latency keep the delay they started with).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from teledispatch.simulator import fault_options, nxcloud, uspeedo, volc
from teledispatch.simulator.context import Reply, Sim, dumps, lower_headers

log = logging.getLogger("simulator")

#: ``scope["extensions"][CONNECTION_EXTENSION]["transport"]`` is the connection's transport, put
#: there by :mod:`simulator.server`; ASGI has no standard way to drop a connection unanswered.
CONNECTION_EXTENSION = "teledispatch.connection"
#: ``scope["extensions"][ARRIVAL_EXTENSION]["t"]`` is the time the request's first bytes were
#: parsed (set by :mod:`simulator.server`). A provider counts a request when it arrives, not when
#: a busy event loop gets round to its handler, so ``t`` in the log and ``--tps`` use this stamp.
ARRIVAL_EXTENSION = "teledispatch.arrival"


class ResponseDropped(ConnectionAbortedError):
    """Raised instead of answering when no transport is reachable (e.g. in-process ASGI tests)."""


class DropConnection(Response):
    """Close the client's connection without a byte of answer: the send is now ambiguous."""

    def __init__(self) -> None:
        super().__init__(b"", 200)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        connection: dict[str, Any] = scope.get("extensions", {}).get(CONNECTION_EXTENSION, {})
        transport: Any = connection.get("transport")
        if transport is None:
            raise ResponseDropped("response dropped by --drop-response-rate")
        transport.close()
        # Let the server see the connection as lost before the app returns, so it does not try
        # to write a "500 returned without response" to it.
        for _ in range(3):
            await asyncio.sleep(0)


class DrSender:
    """Pushes NXCloud delivery reports once each, after a delay, like the provider does."""

    def __init__(self, sim: Sim, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self._sim = sim
        self._transport = transport
        self._client: httpx.AsyncClient | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._timers: set[asyncio.TimerHandle] = set()
        self.sent = 0
        self.failed = 0

    def schedule(self, url: str, form: dict[str, str], delay_s: float) -> None:
        loop = asyncio.get_running_loop()
        generation = self._sim.state.generation
        holder: list[asyncio.TimerHandle] = []

        def fire() -> None:
            self._timers.discard(holder[0])
            if generation != self._sim.state.generation:
                return  # state was reset since: the message no longer exists
            task = loop.create_task(self._post(url, form))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

        holder.append(loop.call_later(delay_s, fire))
        self._timers.add(holder[0])

    async def _post(self, url: str, form: dict[str, str]) -> None:
        if self._client is None:
            self._client = httpx.AsyncClient(
                transport=self._transport,
                timeout=5.0,
                limits=httpx.Limits(max_connections=64, max_keepalive_connections=64),
            )
        try:
            response = await self._client.post(url, data=form)
        except httpx.HTTPError as exc:
            self.failed += 1
            log.debug("DR to %s failed: %s", url, type(exc).__name__)
            return
        if response.is_success:
            self.sent += 1
        else:
            self.failed += 1

    @property
    def pending(self) -> int:
        return len(self._timers) + len(self._tasks)

    async def aclose(self) -> None:
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._client is not None:
            await self._client.aclose()
            self._client = None


def _json(status: int, obj: Any) -> Response:
    return Response(dumps(obj), status, media_type="application/json")


def _to_response(reply: Reply) -> Response:
    if reply.drop:
        return DropConnection()
    return Response(reply.body, reply.status, reply.headers, media_type=reply.content_type)


Endpoint = Callable[[Request], Awaitable[Response]]


def arrival_time(scope: Scope, clock: Callable[[], float]) -> float:
    """When the request arrived: the server's stamp, or ``clock()`` now where there is none
    (in-process ASGI tests, other servers)."""
    stamp: dict[str, Any] | None = scope.get("extensions", {}).get(ARRIVAL_EXTENSION)
    return float(stamp["t"]) if stamp else clock()


async def _timed_out(sim: Sim, channel: str, t: float) -> Response:
    """Hold the request unprocessed for ``timeout_ms``, then close it unanswered."""
    sim.state.record(
        t=t, channel=channel, ids=[], http_status=0, code="timeout", accepted=[], dropped=True
    )
    await asyncio.sleep(sim.faults.for_channel(channel).timeout_ms / 1000.0)
    return DropConnection()


async def _sim_faults(request: Request) -> Response:
    """``GET``: the faults in force; ``POST``: change them (see :mod:`simulator.fault_options`)."""
    sim: Sim = request.app.state.sim
    if request.method == "POST":
        try:
            payload = json.loads(await request.body())
        except (ValueError, UnicodeDecodeError):
            return _json(400, {"error": "the body must be a JSON object of fault options"})
        try:
            channel, changes, clear = fault_options.from_request(payload)
            sim.faults.update(changes, channel, clear=clear)
        except ValueError as exc:
            return _json(400, {"error": str(exc)})
        log.info("faults changed: %s", json.dumps(payload, sort_keys=True))
    return _json(200, sim.faults.snapshot())


async def _sim_requests(request: Request) -> Response:
    sim: Sim = request.app.state.sim
    try:
        since = max(0, int(request.query_params.get("since", "0")))
    except ValueError:
        return _json(400, {"error": "since must be an integer"})
    return Response(dumps(sim.state.log[since:]), media_type="application/json")


async def _sim_reset(request: Request) -> Response:
    """State, counters and faults back to how the process started."""
    request.app.state.sim.reset()
    return _json(200, {"ok": True})


async def _sim_health(request: Request) -> Response:
    sim: Sim = request.app.state.sim
    dr: DrSender = request.app.state.dr
    info = {
        "ok": True,
        "requests": len(sim.state.log),
        "dr_sent": dr.sent,
        "dr_failed": dr.failed,
        "dr_pending": dr.pending,
    }
    return _json(200, info)


def create_app(sim: Sim, dr_transport: httpx.AsyncBaseTransport | None = None) -> Starlette:
    dr = DrSender(sim, dr_transport)
    sim.schedule_dr = dr.schedule

    async def finish(channel: str, reply: Reply) -> Response:
        latency_s = sim.faults.for_channel(channel).latency_ms / 1000.0
        if latency_s > 0:
            await asyncio.sleep(latency_s)
        return _to_response(reply)

    def body_endpoint(
        channel: str,
        handler: Callable[[Sim, float, dict[str, str], bytes], Reply],
    ) -> Endpoint:
        async def endpoint(request: Request) -> Response:
            t = arrival_time(request.scope, sim.clock)
            body = await request.body()
            if sim.faults.times_out(channel):
                return await _timed_out(sim, channel, t)
            reply = handler(sim, t, lower_headers(request.scope["headers"]), body)
            return await finish(channel, reply)

        return endpoint

    async def us_receipt(request: Request) -> Response:
        t = arrival_time(request.scope, sim.clock)
        query = request.scope["query_string"].decode("latin-1")
        reply = uspeedo.receipt(sim, t, lower_headers(request.scope["headers"]), query)
        return await finish(uspeedo.RECEIPT_CHANNEL, reply)

    async def volc_endpoint(request: Request) -> Response:
        t = arrival_time(request.scope, sim.clock)
        body = await request.body()
        scope = request.scope
        raw_query = scope["query_string"].decode("latin-1")
        channel = volc.channel_of(raw_query)
        if sim.faults.times_out(channel):
            return await _timed_out(sim, channel, t)
        reply = volc.handle(
            sim,
            t,
            scope["method"],
            scope["path"],
            raw_query,
            lower_headers(scope["headers"]),
            body,
        )
        return await finish(channel, reply)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await dr.aclose()

    nx_send = body_endpoint(nxcloud.CHANNEL, nxcloud.send)
    routes = [
        Route("/v1/sms/multi/mt", nx_send, methods=["POST"]),
        # The docs' curl example uses this older path for the same operation.
        Route("/api/sms/multi/mt", nx_send, methods=["POST"]),
        Route(
            "/api/sms/get", body_endpoint(nxcloud.QUERY_CHANNEL, nxcloud.query), methods=["POST"]
        ),
        Route(
            "/api/v1/usms/SendBatchUSMSMessage",
            body_endpoint(uspeedo.CHANNEL, uspeedo.send),
            methods=["POST"],
        ),
        Route("/api/v1/usms/USMSSendReceipt", us_receipt, methods=["GET"]),
        Route("/", volc_endpoint, methods=["POST"]),
        Route("/_sim/requests", _sim_requests, methods=["GET"]),
        Route("/_sim/reset", _sim_reset, methods=["POST"]),
        Route("/_sim/health", _sim_health, methods=["GET"]),
        Route("/_sim/faults", _sim_faults, methods=["GET", "POST"]),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.sim = sim
    app.state.dr = dr
    return app
