"""The HTTP API: the producer's enqueue, status, lookup and cancel over JSON.

It is a thin shell over the same domain functions the CLI calls, so an HTTP client and
``teledispatch send`` get identical validation, idempotency and outcomes.

Authentication uses API keys stored *hashed* (``sha256:<hex>``) in the ``[api]`` table of the
config file and/or ``TELEDISPATCH_API_KEYS``: the config can then be read by anyone who
deploys it without handing out a usable key. Presented keys are hashed and compared with
:func:`hmac.compare_digest` against every configured digest, so the time taken says nothing
about which key (or which prefix) matched. With no key configured every request is refused:
an API that enqueues paid messages fails closed.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import re
import threading
import time
import tomllib
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qsl

import sqlalchemy as sa
from fastapi import APIRouter, Depends, FastAPI, Header, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field

from teledispatch.config import ConfigError, Settings, config_path, settings
from teledispatch.db.engine import get_engine
from teledispatch.db.tables import jobs_table, literal_status, messages_table
from teledispatch.producer.cancel import cancel_job
from teledispatch.producer.group_commit import Producer
from teledispatch.producer.jobs import SendJob
from teledispatch.producer.lookup import JobNotFound, MessageView, job_messages, job_status, lookup
from teledispatch.producer.submit import IdempotencyConflict
from teledispatch.receipts import (
    nxcloud_token_ok,
    parse_nxcloud_dr,
    parse_volc_records,
    settle,
    volc_verified,
)
from teledispatch.statuses import ACTIVE_STATUSES, DEFERRED, QUEUED, STATUSES
from teledispatch.validation import Problem, ValidationFailed

log = logging.getLogger("teledispatch.api")

API_KEYS_ENV = "TELEDISPATCH_API_KEYS"
HASH_PREFIX = "sha256:"
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
MAX_PAGE = 1000
#: How long a job may take to become durable before the request fails (the database is down).
STORE_TIMEOUT_S = 30.0


# --- keys -------------------------------------------------------------------------------------


def hash_key(key: str) -> str:
    """The form to put in ``[api] keys``: only the digest is ever stored."""
    return HASH_PREFIX + hashlib.sha256(key.encode()).hexdigest()


def parse_hashed_keys(entries: Iterable[Any], source: str) -> list[bytes]:
    """Digests from ``sha256:<hex>`` entries; a bad entry is named by position, never echoed
    (an operator who pasted a raw key by mistake must not find it in the log)."""
    digests: list[bytes] = []
    problems: list[str] = []
    for i, entry in enumerate(entries):
        text = entry.strip().lower() if isinstance(entry, str) else ""
        hexpart = text.removeprefix(HASH_PREFIX)
        if not text.startswith(HASH_PREFIX) or not _HEX64.match(hexpart):
            problems.append(
                f"{source} entry {i + 1} is not 'sha256:<64 hex digits>' "
                "(make one with `teledispatch api hash-key KEY`)"
            )
            continue
        digests.append(bytes.fromhex(hexpart))
    if problems:
        raise ConfigError("; ".join(problems))
    return digests


def load_api_keys(path: Path | None = None) -> list[bytes]:
    """Hashed keys from the config file's ``[api] keys`` plus ``TELEDISPATCH_API_KEYS``."""
    path = path or config_path()
    digests: list[bytes] = []
    if path.exists():
        with path.open("rb") as fh:
            try:
                data = tomllib.load(fh)
            except tomllib.TOMLDecodeError as exc:
                raise ConfigError(f"{path}: not valid TOML: {exc}") from None
        table = data.get("api", {})
        keys = table.get("keys", []) if isinstance(table, dict) else None
        if not isinstance(keys, list):
            raise ConfigError(f"{path}: [api] keys must be a list of 'sha256:<hex>' strings")
        digests += parse_hashed_keys(keys, f"{path} [api] keys")
    env = os.environ.get(API_KEYS_ENV, "")
    entries = [e for e in env.replace("\n", ",").split(",") if e.strip()]
    digests += parse_hashed_keys(entries, API_KEYS_ENV)
    return digests


class KeyRing:
    def __init__(self, digests: Sequence[bytes]) -> None:
        self._digests = tuple(digests)

    def __len__(self) -> int:
        return len(self._digests)

    def accepts(self, presented: str) -> bool:
        digest = hashlib.sha256(presented.encode()).digest()
        ok = False
        for known in self._digests:  # no early exit: every digest is compared every time
            ok |= hmac.compare_digest(digest, known)
        return ok


# --- response models --------------------------------------------------------------------------


class Enqueued(BaseModel):
    job_id: str
    total: int
    #: False when an earlier job with the same idempotency key was returned.
    created: bool


class JobView(BaseModel):
    job_id: str
    account: str
    channel: str
    total: int
    accepted: int
    counts: dict[str, int]
    done: bool
    cancelled: bool
    created_at: str | None
    next_due_at: str | None
    progress: float = Field(description="finished messages / total, 0..1")
    eta: str | None = Field(
        description="estimated completion (ISO 8601) at the job's average rate so far; "
        "null when done or before the first outcome"
    )


class MessagePage(BaseModel):
    #: The lookup's own view of a message: one definition for the CLI, the library and here.
    messages: list[MessageView]
    #: Pass as ``cursor`` for the next page; null on the last page.
    next_cursor: str | None


class CancelOut(BaseModel):
    job_id: str
    #: Messages moved to ``cancelled``; claimed ones finish as they will.
    cancelled: int


class ProblemOut(BaseModel):
    loc: list[str | int]
    index: int | None
    field: str
    value: Any
    rule: str
    msg: str


class ValidationError422(BaseModel):
    detail: list[ProblemOut]
    #: Every problem found; ``detail`` may list fewer for a huge job.
    total: int


class ErrorOut(BaseModel):
    detail: str


# --- helpers ----------------------------------------------------------------------------------


def _epoch(text: str | None) -> float | None:
    return None if text is None else datetime.fromisoformat(text).timestamp()


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat()


def estimate_eta(
    total: int, finished: int, created_at: float | None, next_due_at: float | None, now: float
) -> float | None:
    """Completion time at the job's average rate so far, never before its next due message.

    A crude estimate, but one that needs no history table: the rate a job has achieved is
    the best cheap predictor of the rate it will keep (same account, same limits).
    """
    if finished >= total:
        return None
    if finished == 0 or created_at is None:
        return next_due_at
    elapsed = max(now - created_at, 1e-3)
    eta = now + (total - finished) * elapsed / finished
    return max(eta, next_due_at) if next_due_at else eta


def _problem_out(p: Problem) -> ProblemOut:
    if p.index is not None:
        loc: list[str | int] = ["body", "recipients", p.index, *p.field.split(".")]
    else:
        loc = ["body", *p.field.split(".")]
    return ProblemOut(
        loc=loc,
        index=p.index,
        field=p.field,
        value=_json_safe(p.value),
        rule=p.rule,
        msg=str(p),
    )


def _json_safe(value: Any) -> Any:
    try:
        return jsonable_encoder(value)
    except (TypeError, ValueError):
        return repr(value)


def _from_pydantic(err: dict[str, Any]) -> ProblemOut:
    loc: list[str | int] = [p if isinstance(p, int) else str(p) for p in err.get("loc", ())]
    rest = loc[1:] if loc and loc[0] in ("body", "query", "path", "header") else loc
    index: int | None = None
    if len(rest) >= 2 and rest[0] == "recipients" and isinstance(rest[1], int):
        index = rest[1]
        rest = rest[2:]
    field = ".".join(str(p) for p in rest) or (str(loc[0]) if loc else "body")
    # A missing field's "input" is the whole enclosing object: not worth echoing back.
    value = None if err.get("type") == "missing" else _json_safe(err.get("input"))
    rule = str(err.get("msg", "invalid"))
    where = f"recipients[{index}].{field}" if index is not None else field
    return ProblemOut(
        loc=loc, index=index, field=field, value=value, rule=rule, msg=f"{where}: {rule}"
    )


def _unprocessable(problems: list[ProblemOut], total: int | None = None) -> JSONResponse:
    body = ValidationError422(detail=problems, total=len(problems) if total is None else total)
    return JSONResponse(status_code=422, content=jsonable_encoder(body))


def _query_problem(field: str, value: Any, rule: str) -> JSONResponse:
    return _unprocessable(
        [
            ProblemOut(
                loc=["query", field],
                index=None,
                field=field,
                value=value,
                rule=rule,
                msg=f"{field}: {rule}",
            )
        ]
    )


# --- metrics ----------------------------------------------------------------------------------


def collect_metrics(cfg: Settings, now: float | None = None) -> list[Any]:
    """Gauges read from the database at scrape time.

    The database, not a counter in some process, is the source of truth: every API replica
    reports the same numbers, and a restart loses nothing. The messages query is a GROUP BY
    over the table (index-assisted on PostgreSQL), so scrape every 15 s or slower.
    """
    from prometheus_client.core import GaugeMetricFamily

    now = time.time() if now is None else now
    m = messages_table.c
    with get_engine(cfg.database_url).connect() as conn:
        counts = conn.execute(
            sa.select(m.channel, m.account, m.status, sa.func.count()).group_by(
                m.channel, m.account, m.status
            )
        ).all()
        oldest = conn.execute(
            sa.select(m.channel, m.account, sa.func.min(m.due_at))
            .where(m.status.in_(literal_status(QUEUED, DEFERRED)), m.due_at <= now)
            .group_by(m.channel, m.account)
        ).all()
    messages = GaugeMetricFamily(
        "teledispatch_messages",
        "Messages by channel, account and status",
        labels=["channel", "account", "status"],
    )
    for channel, account, status, n in counts:
        messages.add_metric([str(channel), str(account), str(status)], float(n))
    age = GaugeMetricFamily(
        "teledispatch_oldest_due_message_age_seconds",
        "Seconds the oldest due, unclaimed message of an account has waited (0: none waiting)",
        labels=["channel", "account"],
    )
    # Every configured account gets a series, so "absent" never hides "stuck".
    ages: dict[tuple[str, str], float] = {(a.channel, a.name): 0.0 for a in cfg.accounts.values()}
    for channel, account, due_at in oldest:
        ages[(str(channel), str(account))] = max(0.0, now - float(due_at))
    for (channel, account), seconds in sorted(ages.items()):
        age.add_metric([channel, account], seconds)
    return [messages, age]


def render_metrics(cfg: Settings) -> tuple[bytes, str]:
    """The Prometheus text exposition of :func:`collect_metrics`."""
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

    class _Collector:
        def collect(self) -> list[Any]:
            return collect_metrics(cfg)

    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector())
    return generate_latest(registry), CONTENT_TYPE_LATEST


# --- the app ----------------------------------------------------------------------------------

_bearer = HTTPBearer(auto_error=False, description="Authorization: Bearer <API key>")
_header_key = APIKeyHeader(name="X-API-Key", auto_error=False, description="X-API-Key: <API key>")

_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": ErrorOut}}
_AUTH: dict[int | str, dict[str, Any]] = {401: {"model": ErrorOut}}
_INVALID: dict[int | str, dict[str, Any]] = {422: {"model": ValidationError422}}


class _Unauthorized(Exception):
    pass


def create_app(cfg: Settings | None = None, keys: Sequence[bytes] | None = None) -> FastAPI:  # noqa: C901  (phase-1 move; being split)
    """The ASGI app. ``cfg``/``keys`` default to the process settings and the configured keys;
    keys are read once here, so a malformed entry stops the server at start, not per request."""
    get_cfg: Callable[[], Settings] = (lambda: cfg) if cfg is not None else settings
    ring = KeyRing(load_api_keys() if keys is None else keys)
    if not len(ring):
        log.warning(
            "no API key configured ([api] keys or %s): every request is refused", API_KEYS_ENV
        )

    def require_key(
        bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
        header_key: Annotated[str | None, Depends(_header_key)],
    ) -> None:
        presented = bearer.credentials if bearer is not None else header_key
        if not presented or not ring.accepts(presented):
            raise _Unauthorized

    app = FastAPI(
        title="teledispatch",
        version="1",
        description="Enqueue send jobs and read their outcomes.",
    )

    @app.exception_handler(_Unauthorized)
    async def _on_unauthorized(_: Request, __: Exception) -> JSONResponse:
        return JSONResponse(
            status_code=401,
            content={"detail": "missing or invalid API key"},
            headers={"WWW-Authenticate": "Bearer"},
        )

    @app.exception_handler(RequestValidationError)
    async def _on_invalid_request(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return _unprocessable([_from_pydantic(dict(e)) for e in exc.errors()])

    @app.exception_handler(ConfigError)
    async def _on_config_error(_: Request, exc: Exception) -> JSONResponse:
        log.error("configuration error: %s", exc)
        return JSONResponse(
            status_code=500, content={"detail": "server configuration error; see its log"}
        )

    @app.get("/livez", include_in_schema=False)
    def livez() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    def readyz() -> JSONResponse:
        try:
            with get_engine(get_cfg().database_url).connect() as conn:
                conn.execute(sa.text("SELECT 1"))
        except Exception as exc:  # readiness reports, it does not raise
            log.warning("database not reachable: %s", type(exc).__name__)
            return JSONResponse(status_code=503, content={"status": "database unreachable"})
        return JSONResponse(content={"status": "ok"})

    v1 = APIRouter(prefix="/v1", dependencies=[Depends(require_key)], responses=_AUTH)
    producers: list[Producer] = []
    producer_lock = threading.Lock()

    def producer() -> Producer:
        # Created on first use, in the serving process (never inherited across a fork). No
        # linger: a lone request is stored at once, and requests that arrive while a commit
        # is under way share the next one (group commit), so throughput grows with load.
        with producer_lock:
            if not producers:
                producers.append(Producer(get_cfg(), linger_ms=0))
            return producers[0]

    @v1.post(
        "/jobs",
        status_code=201,
        response_model=Enqueued,
        responses={
            200: {"model": Enqueued, "description": "an existing job (same idempotency key)"},
            409: {"model": ErrorOut, "description": "idempotency key used for other content"},
            **_INVALID,
        },
    )
    def post_job(
        job: SendJob,
        response: Response,
        idempotency_key: Annotated[
            str | None,
            Header(
                alias="Idempotency-Key",
                min_length=1,
                max_length=200,
                description="overrides the body's idempotency_key",
            ),
        ] = None,
    ) -> Any:
        try:
            pending = producer().submit_recipients(
                job.account,
                job.recipients,
                defaults=job.defaults,
                idempotency_key=idempotency_key or job.idempotency_key,
                not_before=job.not_before,
                allow_duplicates=job.allow_duplicates,
            )
            # Durable before the answer, as enqueue() is; concurrent requests share a commit.
            result = pending.result(timeout=STORE_TIMEOUT_S)
        except ValidationFailed as exc:
            return _unprocessable([_problem_out(p) for p in exc.problems], exc.total)
        except IdempotencyConflict as exc:
            return JSONResponse(status_code=409, content={"detail": str(exc)})
        response.status_code = 201 if result.created else 200
        return Enqueued(job_id=result.job_id, total=result.total, created=result.created)

    @v1.get("/jobs/{job_id}", response_model=JobView, responses=_NOT_FOUND)
    def get_job(job_id: str) -> Any:
        try:
            st = job_status(job_id, cfg=get_cfg())
        except JobNotFound:
            return JSONResponse(status_code=404, content={"detail": f"no job {job_id!r}"})
        finished = sum(n for s, n in st.counts.items() if s not in ACTIVE_STATUSES)
        eta = st.eta
        if eta is None and not st.done:
            when = estimate_eta(
                st.total, finished, _epoch(st.created_at), _epoch(st.next_due_at), time.time()
            )
            eta = None if when is None else _iso(when)
        return JobView(
            job_id=st.job_id,
            account=st.account,
            channel=st.channel,
            total=st.total,
            accepted=st.accepted,
            counts=st.counts,
            done=st.done,
            cancelled=st.cancelled,
            created_at=st.created_at,
            next_due_at=st.next_due_at,
            progress=round(finished / st.total, 6) if st.total else 1.0,
            eta=None if st.done else eta,
        )

    @v1.get(
        "/jobs/{job_id}/messages",
        response_model=MessagePage,
        responses={**_NOT_FOUND, **_INVALID},
    )
    def get_job_messages(
        job_id: str,
        status: Annotated[str | None, Query(description="only messages in this status")] = None,
        cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
    ) -> Any:
        if status is not None and status not in STATUSES:
            return _query_problem("status", status, f"must be one of {', '.join(STATUSES)}")
        c = get_cfg()
        with get_engine(c.database_url).connect() as conn:
            found = conn.execute(
                sa.select(jobs_table.c.id).where(jobs_table.c.id == job_id)
            ).first()
        if found is None:
            return JSONResponse(status_code=404, content={"detail": f"no job {job_id!r}"})
        page = job_messages(job_id, status=status, after=cursor, limit=limit, cfg=c)
        return MessagePage(
            messages=page,
            next_cursor=page[-1].id if len(page) == limit else None,
        )

    @v1.post("/jobs/{job_id}/cancel", response_model=CancelOut, responses=_NOT_FOUND)
    def post_cancel(job_id: str) -> Any:
        try:
            result = cancel_job(job_id, cfg=get_cfg())
        except JobNotFound:
            return JSONResponse(status_code=404, content={"detail": f"no job {job_id!r}"})
        return CancelOut(job_id=result.job_id, cancelled=result.cancelled)

    @v1.get("/messages", response_model=list[MessageView], responses=_INVALID)
    def get_messages(
        phone: Annotated[str | None, Query(description="recipient, E.164 (+ optional)")] = None,
        provider_id: Annotated[str | None, Query(description="the provider's message id")] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
    ) -> Any:
        if (phone is None) == (provider_id is None):
            return _query_problem("phone", phone, "give exactly one of phone or provider_id")
        rows = lookup(phone=phone, provider_id=provider_id, limit=limit, cfg=get_cfg())
        return rows

    app.include_router(v1)
    app.include_router(_callbacks(get_cfg))
    _redact_access_log()

    @app.get("/metrics", include_in_schema=False, dependencies=[Depends(require_key)])
    def metrics() -> Response:
        body, content_type = render_metrics(get_cfg())
        return Response(content=body, media_type=content_type)

    return app


# --- delivery-receipt callbacks ---------------------------------------------------------------

#: The NXCloud DR token sits in the URL path (NXCloud sends no header we could use) and a
#: Volcengine ``authCode`` in the query; access logs must not keep either.
_CALLBACK_SECRET = re.compile(r"(/v1/callbacks/nxcloud/[^/?\s]+/)[^/?\s]+|(authCode=)[^&\s]+")


class _RedactCallbackSecrets(logging.Filter):
    """Rewrites uvicorn access-log lines: ``/v1/callbacks/nxcloud/acct/***``, ``authCode=***``."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                _CALLBACK_SECRET.sub(lambda mt: (mt.group(1) or mt.group(2)) + "***", a)
                if isinstance(a, str)
                else a
                for a in record.args
            )
        return True


def _redact_access_log() -> None:
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, _RedactCallbackSecrets) for f in access.filters):
        access.addFilter(_RedactCallbackSecrets())


def _callbacks(get_cfg: Callable[[], Settings]) -> APIRouter:
    """Provider pushes. No API key (providers cannot send one): each is authenticated by the
    account's ``callback_token`` instead, and a refusal looks the same whether the account
    exists or not."""
    router = APIRouter(prefix="/v1/callbacks", include_in_schema=False)

    @router.api_route("/nxcloud/{account}/{token}", methods=["POST", "GET"])
    async def nxcloud_dr(account: str, token: str, request: Request) -> Response:
        cfg = get_cfg()
        if not nxcloud_token_ok(cfg.accounts.get(account), token):
            return JSONResponse(status_code=404, content={"detail": "Not Found"})
        fields = dict(request.query_params)  # older accounts: the DR in the query string
        body = await request.body()
        if body:
            fields.update(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
        dr = parse_nxcloud_dr(fields)
        if dr is not None:
            moved = await run_in_threadpool(
                settle, get_engine(cfg.database_url), account, dr.receipt, message_id=dr.message_id
            )
            log.debug("nxcloud DR for %s on %s: %d settled", dr.message_id, account, moved)
        # Always "success": NXCloud pushes once and a refusal would not make it resend.
        return PlainTextResponse("success")

    @router.post("/volc/{account}")
    async def volc_call_record(
        account: str,
        request: Request,
        timestamp: Annotated[str, Query()] = "",
        auth_code: Annotated[str, Query(alias="authCode")] = "",
    ) -> Response:
        cfg = get_cfg()
        body = await request.body()
        if not volc_verified(cfg.accounts.get(account), timestamp, auth_code, body):
            return JSONResponse(status_code=403, content={"detail": "Forbidden"})
        engine = get_engine(cfg.database_url)
        moved = 0
        for record in parse_volc_records(body):
            moved += await run_in_threadpool(
                settle, engine, account, record.receipt, provider_id=record.provider_id
            )
        return JSONResponse(content={"status": "ok", "settled": moved})

    return router


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
