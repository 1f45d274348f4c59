"""The HTTP API: the producer's enqueue, status, lookup and cancel over JSON.

:func:`create_app` builds the app from routers, one module per concern: ``jobs`` and
``messages`` (the ``/v1`` API, behind an API key, see ``auth``), ``callbacks`` (provider
pushes), ``metrics`` and ``health``. Per-app state (settings, key ring, the shared producer)
lives on ``app.state`` (``deps``). Needs the ``server`` extra:
``pip install 'teledispatch[server]'``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from teledispatch.api import (
    callbacks,
    console,
    csv_upload,
    health,
    jobs,
    messages,
    metrics,
    optouts,
    views,
)
from teledispatch.api.auth import API_KEYS_ENV, ApiKey, KeyRing, load_keys
from teledispatch.api.deps import ApiState, Unauthorized
from teledispatch.api.docs import install_docs
from teledispatch.api.guards import RequestGuard
from teledispatch.api.openapi import typed_jobs
from teledispatch.api.problems import from_pydantic, unprocessable
from teledispatch.api.ratelimit import Limiter, RateLimited, RedisLimiter
from teledispatch.config import ConfigError, Settings, settings

log = logging.getLogger("teledispatch.api")


async def _on_unauthorized(_: Request, __: Exception) -> JSONResponse:
    return JSONResponse(
        status_code=401,
        content={"detail": "missing or invalid API key"},
        headers={"WWW-Authenticate": "Bearer"},
    )


async def _on_rate_limited(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RateLimited)
    return JSONResponse(
        status_code=429,
        content={
            "detail": "too many requests for this API key ([api] rate_per_s / burst)",
            "retry_after_s": round(exc.retry_after_s, 3),
        },
        headers={"Retry-After": exc.header},
    )


async def _on_invalid_request(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return unprocessable([from_pydantic(dict(e)) for e in exc.errors()])


async def _on_config_error(_: Request, exc: Exception) -> JSONResponse:
    log.error("configuration error: %s", exc)
    return JSONResponse(
        status_code=500, content={"detail": "server configuration error; see its log"}
    )


def create_app(
    cfg: Settings | None = None,
    keys: Sequence[bytes | ApiKey] | None = None,
    *,
    limiter: Limiter | None = None,
) -> FastAPI:
    """The ASGI app. ``cfg``/``keys`` default to the process settings and the configured keys;
    keys are read once here, so a malformed entry stops the server at start, not per request.
    ``limiter`` defaults to per-key rates in the Redis at ``redis_url`` for an app on the
    process settings; an app given its settings (tests, embedding) gets none unless passed."""
    get_cfg: Callable[[], Settings] = (lambda: cfg) if cfg is not None else settings
    ring = KeyRing(load_keys(get_cfg()) if keys is None else keys)
    if not len(ring):
        log.warning(
            "no API key configured ([api] keys or %s): every request is refused", API_KEYS_ENV
        )
    app = FastAPI(
        title="teledispatch",
        version="1",
        description="Enqueue send jobs and read their outcomes.",
        docs_url=None,
        redoc_url=None,
    )
    install_docs(app)
    generate = app.openapi
    app.openapi = lambda: typed_jobs(generate())  # type: ignore[method-assign]
    app.add_middleware(
        RequestGuard,
        max_body_bytes=get_cfg().api_max_body_bytes,
        # Streamed and bounded by the route itself ([api] max_upload_bytes).
        streamed_paths=frozenset({csv_upload.PATH}),
    )
    app.state.teledispatch = ApiState(
        get_cfg,
        ring,
        reload_keys=keys is None,
        limiter=limiter or (RedisLimiter.from_url(get_cfg().redis_url) if cfg is None else None),
    )
    app.add_exception_handler(Unauthorized, _on_unauthorized)
    app.add_exception_handler(RateLimited, _on_rate_limited)
    app.add_exception_handler(RequestValidationError, _on_invalid_request)
    app.add_exception_handler(ConfigError, _on_config_error)
    # ``csv_upload`` and ``views`` first: their ``/v1/jobs/csv``, ``GET /v1/jobs`` and
    # ``/v1/jobs/{id}/failures`` sit beside the jobs router's ``/v1/jobs/{id}`` routes.
    routers = (health.router, csv_upload.router, views.router, jobs.router, messages.router)
    for router in (*routers, optouts.router, callbacks.router, metrics.router, console.router):
        app.include_router(router)
    callbacks.redact_access_log()
    return app


def serve(*, host: str, port: int, log_level: str = "info") -> None:
    """Run the API under uvicorn (``teledispatch api``)."""
    import uvicorn

    uvicorn.run(
        create_app(),
        host=host,
        port=port,
        log_level=log_level,
        server_header=False,
        # Proxies in front (ingress) set X-Forwarded-*; uvicorn trusts only loopback by default.
        proxy_headers=True,
    )
