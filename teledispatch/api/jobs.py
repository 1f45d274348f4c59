"""``/v1/jobs``: enqueue a job, read its progress and messages, cancel what is left of it.

Each route is a thin shell over the producer function the CLI calls, so an HTTP client and
``teledispatch send`` get identical validation, idempotency and outcomes.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Header, Query, Response
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse, StreamingResponse

from teledispatch import circuits, exports
from teledispatch.api.auth import ApiKey
from teledispatch.api.deps import Key, State, require_key
from teledispatch.api.openapi import JOB_LINKS
from teledispatch.api.problems import problem_out, unprocessable
from teledispatch.api.schemas import (
    BODY_REFUSED,
    INVALID,
    NOT_FOUND,
    UNAUTHORIZED,
    CancelOut,
    DryRunOut,
    Enqueued,
    ErrorOut,
    JobView,
    MessagePage,
    RetryIn,
    RetryOut,
)
from teledispatch.db import jobs as jobs_db
from teledispatch.producer.callback import check_options
from teledispatch.producer.cancel import cancel_job
from teledispatch.producer.dry_run import dry_run, dry_run_route
from teledispatch.producer.jobs import SendJob
from teledispatch.producer.lane import Lane
from teledispatch.producer.lookup import JobNotFound, job_messages, job_status
from teledispatch.producer.retry import retry_job
from teledispatch.producer.submit import IdempotencyConflict, enqueue_job
from teledispatch.statuses import ACTIVE_STATUSES, Status
from teledispatch.validation import Problem, ValidationFailed

MAX_PAGE = 1000
#: How long a job may take to become durable before the request fails (the database is down).
STORE_TIMEOUT_S = 30.0

# Every route answers 422 to a NUL character in its path or query (see ``guards``).
router = APIRouter(
    prefix="/v1/jobs", dependencies=[Depends(require_key)], responses={**UNAUTHORIZED, **INVALID}
)


JOB_EXAMPLES: dict[str, Any] = {
    "sms": {
        "summary": "one SMS text to two recipients",
        "value": {
            "account": "demo",
            "channel": "nxcloud.sms",
            "recipients": [{"phone": "+8613800138000"}, {"phone": "+8613800138001"}],
            "defaults": {"content": "Your code is 1234"},
        },
    }
}


def _not_found(job_id: str) -> JSONResponse:
    return JSONResponse(status_code=404, content={"detail": f"no job {job_id!r}"})


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


@router.post(
    "",
    status_code=201,
    response_model=Enqueued,
    operation_id="post_job",
    responses={
        201: {"description": "the job is stored", "links": JOB_LINKS},
        200: {
            "model": Enqueued | DryRunOut,
            "description": "an existing job (same idempotency key), or a dry run's report",
        },
        409: {"model": ErrorOut, "description": "idempotency key used for other content"},
        **BODY_REFUSED,
        **INVALID,
    },
)
def post_job(
    state: State,
    key: Key,
    job: Annotated[SendJob, Body(openapi_examples=JOB_EXAMPLES)],
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
    dry_run_: Annotated[
        bool,
        Query(
            alias="dry_run",
            description="report recipients, problems, segments, cost and ETA; enqueue nothing",
        ),
    ] = False,
) -> Any:
    if job.route is not None:
        return _post_routed(state, key, job, response, idempotency_key, dry_run_)
    assert job.account is not None  # SendJob holds exactly one of account and route
    if not key.may_use(job.account) or job.account not in state.cfg().accounts:
        # The same answer whether the account exists or not: a key learns no other account.
        refusal = Problem(None, "account", job.account, "is not an account this API key may use")
        return unprocessable([problem_out(refusal)])
    wrong_channel = job.channel_rule(state.cfg().accounts[job.account].channel)
    if wrong_channel is not None:
        return unprocessable([problem_out(Problem(None, "channel", job.channel, wrong_channel))])
    if dry_run_:
        return _dry_run(state, job)
    try:
        pending = state.producer().submit_recipients(
            job.account,
            job.recipients,
            defaults=job.defaults,
            idempotency_key=key.idempotency_key(idempotency_key or job.idempotency_key),
            not_before=job.not_before,
            allow_duplicates=job.allow_duplicates,
            lane=Lane(job.priority, job.expires_at, job.ttl_s, job.weight),
            callback_url=job.callback_url,
            quiet_hours=job.quiet_hours,
        )
        # Durable before the answer, as enqueue() is; concurrent requests share a commit.
        result = pending.result(timeout=STORE_TIMEOUT_S)
    except ValidationFailed as exc:
        return unprocessable([problem_out(p) for p in exc.problems], exc.total)
    except IdempotencyConflict as exc:
        return JSONResponse(status_code=409, content={"detail": str(exc)})
    response.status_code = 201 if result.created else 200
    return Enqueued(job_id=result.job_id, total=result.total, created=result.created)


def _post_routed(
    state: State,
    key: ApiKey,
    job: SendJob,
    response: Response,
    idempotency_key: str | None,
    dry_run_: bool,
) -> Any:
    """A job naming a route: the key must list the route (or cover every account)."""
    assert job.route is not None
    cfg = state.cfg()
    if not key.may_use_route(job.route) or job.route not in cfg.routes:
        refusal = Problem(None, "route", job.route, "is not a route this API key may use")
        return unprocessable([problem_out(refusal)])
    scoped = job.model_copy(
        update={"idempotency_key": key.idempotency_key(idempotency_key or job.idempotency_key)}
    )
    try:
        if dry_run_:
            report = dry_run_route(
                job.route,
                job.recipients,
                defaults=job.defaults,
                allow_duplicates=job.allow_duplicates,
                cfg=cfg,
            )
            return JSONResponse(status_code=200, content=jsonable_encoder(report.as_dict()))
        result = enqueue_job(scoped, cfg=cfg)
    except ValidationFailed as exc:
        return unprocessable([problem_out(p) for p in exc.problems], exc.total)
    except IdempotencyConflict as exc:
        return JSONResponse(status_code=409, content={"detail": str(exc)})
    response.status_code = 201 if result.created else 200
    return Enqueued(job_id=result.job_id, total=result.total, created=result.created)


def _dry_run(state: State, job: SendJob) -> Any:
    assert job.account is not None
    try:
        lane = Lane(job.priority, job.expires_at, job.ttl_s, job.weight)
        check_options(lane, job.callback_url, state.cfg().webhooks)
        report = dry_run(
            job.account,
            job.recipients,
            defaults=job.defaults,
            not_before=job.not_before,
            allow_duplicates=job.allow_duplicates,
            priority=job.priority,
            quiet_hours=job.quiet_hours,
            cfg=state.cfg(),
        )
    except ValidationFailed as exc:  # the job as a whole (account, job-wide template)
        return unprocessable([problem_out(p) for p in exc.problems], exc.total)
    return JSONResponse(status_code=200, content=jsonable_encoder(report.as_dict()))


@router.get("/{job_id}", response_model=JobView, responses=NOT_FOUND, operation_id="get_job")
def get_job(state: State, key: Key, job_id: str) -> Any:
    try:
        st = job_status(job_id, cfg=state.cfg())
    except JobNotFound:
        return _not_found(job_id)
    if not key.may_see(st.account, st.route):  # another tenant's job: as if it did not exist
        return _not_found(job_id)
    finished = sum(n for s, n in st.counts.items() if s not in ACTIVE_STATUSES)
    # The job's own lower bound (its last waiting message's due time: a quiet-hours
    # opening counts), else later if its rate so far says so.
    eta = st.eta
    if not st.done:
        when = estimate_eta(
            st.total, finished, _epoch(st.created_at), _epoch(st.next_due_at), time.time()
        )
        if when is not None and (eta is None or when > (_epoch(eta) or 0.0)):
            eta = _iso(when)
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
        segments=st.segments,
        paused=None if st.done else _paused(state, st.account, st.route),
        route=st.route,
    )


def _paused(state: State, account: str, route: str | None) -> str | None:
    """The job's account's circuit line; for a routed job, each paused account's."""
    cfg = state.cfg()
    if route is None or route not in cfg.routes:
        return circuits.describe(cfg.redis_url, account)
    lines = []
    for name in sorted(cfg.routes[route].all_accounts):
        line = circuits.describe(cfg.redis_url, name)
        if line is not None:
            lines.append(f"{name} {line}")
    return "; ".join(lines) or None


@router.get(
    "/{job_id}/messages",
    response_model=MessagePage,
    responses={**NOT_FOUND, **INVALID},
    operation_id="get_job_messages",
)
def get_job_messages(
    state: State,
    key: Key,
    job_id: str,
    status: Annotated[Status | None, Query(description="only messages in this status")] = None,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
) -> Any:
    cfg = state.cfg()
    with state.engine().connect() as conn:
        found = jobs_db.get_job(conn, job_id)
    if found is None or not key.may_see(found.account, found.route):
        return _not_found(job_id)
    page = job_messages(job_id, status=status, after=cursor, limit=limit, cfg=cfg)
    return MessagePage(messages=page, next_cursor=page[-1].id if len(page) == limit else None)


@router.get(
    "/{job_id}/messages.csv",
    response_class=StreamingResponse,
    responses={
        **NOT_FOUND,
        200: {"content": {"text/csv": {}}, "description": "one row a recipient"},
    },
    operation_id="get_job_messages_csv",
)
def get_job_messages_csv(state: State, key: Key, job_id: str) -> Any:
    """The job's outcomes as CSV, one row per recipient (the columns of ``teledispatch
    export``), streamed page by page: memory stays flat however big the job."""
    engine = state.engine()
    with engine.connect() as conn:
        found = jobs_db.get_job(conn, job_id)
    if found is None or not key.may_see(found.account, found.route):
        return _not_found(job_id)
    return StreamingResponse(
        exports.csv_lines(exports.rows(engine, job_id)),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{job_id}.csv"'},
    )


@router.post(
    "/{job_id}/cancel", response_model=CancelOut, responses=NOT_FOUND, operation_id="cancel_job"
)
def post_cancel(state: State, key: Key, job_id: str) -> Any:
    cfg = state.cfg()
    with state.engine().connect() as conn:
        found = jobs_db.get_job(conn, job_id)
    if found is None or not key.may_see(found.account, found.route):
        return _not_found(job_id)
    try:
        result = cancel_job(job_id, cfg=cfg)
    except JobNotFound:
        return _not_found(job_id)
    return CancelOut(job_id=result.job_id, cancelled=result.cancelled)


@router.post(
    "/{job_id}/retry", response_model=RetryOut, responses={**NOT_FOUND, **BODY_REFUSED, **INVALID}
)
def post_retry(state: State, key: Key, job_id: str, body: RetryIn | None = None) -> Any:
    """Send the job's chosen finished messages again, as new messages of the job; what may
    have been sent is skipped and counted. Retrying again sends nothing twice."""
    cfg = state.cfg()
    with state.engine().connect() as conn:
        found = jobs_db.get_job(conn, job_id)
    if found is None or not key.may_use(found.account):
        return _not_found(job_id)
    choice = body or RetryIn()
    try:
        result = retry_job(
            job_id, statuses=choice.statuses, error_codes=choice.error_codes, cfg=cfg
        )
    except JobNotFound:
        return _not_found(job_id)
    return RetryOut.model_validate(result.as_dict())
