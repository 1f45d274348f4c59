"""``/v1/jobs``: enqueue a job, read its progress and messages, cancel what is left of it.

Each route is a thin shell over the producer function the CLI calls, so an HTTP client and
``teledispatch send`` get identical validation, idempotency and outcomes.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Response
from fastapi.responses import JSONResponse

from teledispatch.api.deps import State, require_key
from teledispatch.api.problems import problem_out, query_problem, unprocessable
from teledispatch.api.schemas import (
    INVALID,
    NOT_FOUND,
    UNAUTHORIZED,
    CancelOut,
    Enqueued,
    ErrorOut,
    JobView,
    MessagePage,
)
from teledispatch.db import jobs as jobs_db
from teledispatch.db.engine import get_engine
from teledispatch.producer.cancel import cancel_job
from teledispatch.producer.jobs import SendJob
from teledispatch.producer.lookup import JobNotFound, job_messages, job_status
from teledispatch.producer.submit import IdempotencyConflict
from teledispatch.statuses import ACTIVE_STATUSES, STATUSES
from teledispatch.validation import ValidationFailed

MAX_PAGE = 1000
#: How long a job may take to become durable before the request fails (the database is down).
STORE_TIMEOUT_S = 30.0

router = APIRouter(prefix="/v1/jobs", dependencies=[Depends(require_key)], responses=UNAUTHORIZED)


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
    responses={
        200: {"model": Enqueued, "description": "an existing job (same idempotency key)"},
        409: {"model": ErrorOut, "description": "idempotency key used for other content"},
        **INVALID,
    },
)
def post_job(
    state: State,
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
        pending = state.producer().submit_recipients(
            job.account,
            job.recipients,
            defaults=job.defaults,
            idempotency_key=idempotency_key or job.idempotency_key,
            not_before=job.not_before,
            allow_duplicates=job.allow_duplicates,
            callback_url=job.callback_url,
        )
        # Durable before the answer, as enqueue() is; concurrent requests share a commit.
        result = pending.result(timeout=STORE_TIMEOUT_S)
    except ValidationFailed as exc:
        return unprocessable([problem_out(p) for p in exc.problems], exc.total)
    except IdempotencyConflict as exc:
        return JSONResponse(status_code=409, content={"detail": str(exc)})
    response.status_code = 201 if result.created else 200
    return Enqueued(job_id=result.job_id, total=result.total, created=result.created)


@router.get("/{job_id}", response_model=JobView, responses=NOT_FOUND)
def get_job(state: State, job_id: str) -> Any:
    try:
        st = job_status(job_id, cfg=state.cfg())
    except JobNotFound:
        return _not_found(job_id)
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


@router.get("/{job_id}/messages", response_model=MessagePage, responses={**NOT_FOUND, **INVALID})
def get_job_messages(
    state: State,
    job_id: str,
    status: Annotated[str | None, Query(description="only messages in this status")] = None,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
) -> Any:
    if status is not None and status not in STATUSES:
        return query_problem("status", status, f"must be one of {', '.join(STATUSES)}")
    cfg = state.cfg()
    with get_engine(cfg.database_url).connect() as conn:
        found = jobs_db.get_job(conn, job_id)
    if found is None:
        return _not_found(job_id)
    page = job_messages(job_id, status=status, after=cursor, limit=limit, cfg=cfg)
    return MessagePage(messages=page, next_cursor=page[-1].id if len(page) == limit else None)


@router.post("/{job_id}/cancel", response_model=CancelOut, responses=NOT_FOUND)
def post_cancel(state: State, job_id: str) -> Any:
    try:
        result = cancel_job(job_id, cfg=state.cfg())
    except JobNotFound:
        return _not_found(job_id)
    return CancelOut(job_id=result.job_id, cancelled=result.cancelled)
