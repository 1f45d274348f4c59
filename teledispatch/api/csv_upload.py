"""``POST /v1/jobs/csv``: a job whose recipients arrive as a CSV body, read as it streams in.

A job too big for one JSON body (``[api] max_body_bytes``) is uploaded as CSV text, the file
``teledispatch send --csv`` reads, with the job's options as query parameters. The body is
never held whole: chunks pass from the event loop to a worker thread through a small queue
and into the CLI's CSV reader (:mod:`teledispatch.csv_input`) and the producer's
``enqueue_stream``, so memory stays flat and the upload is bounded by ``[api]
max_upload_bytes`` instead. Every row is checked before anything is stored: a 422 lists every
problem by row number (the header is row 1), and an upload cut short stores nothing.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Annotated, Any

import anyio
import anyio.from_thread
import anyio.to_thread
from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.requests import ClientDisconnect

from teledispatch.api.deps import Key, State, require_key
from teledispatch.api.openapi import JOB_LINKS
from teledispatch.api.problems import clip_value, from_pydantic, problem_out, unprocessable
from teledispatch.api.schemas import (
    INVALID,
    UNAUTHORIZED,
    DryRunOut,
    Enqueued,
    ErrorOut,
    ProblemOut,
)
from teledispatch.csv_input import DEFAULT_ENCODING, FIRST_ROW, CsvRefused, csv_recipients
from teledispatch.priorities import Priority
from teledispatch.producer.dry_run import dry_run
from teledispatch.producer.jobs import SendJob
from teledispatch.producer.submit import IdempotencyConflict, enqueue_stream
from teledispatch.validation import Problem, ValidationFailed

PATH = "/v1/jobs/csv"
#: Chunks in flight between the event loop and the reading thread.
QUEUE_CHUNKS = 8
#: Query parameters that set one job-wide field each (as the CLI's flags of the same names).
FIELD_PARAMS = ("content", "template_id", "sender_id", "task_open_id")

router = APIRouter(
    prefix="/v1/jobs", dependencies=[Depends(require_key)], responses={**UNAUTHORIZED, **INVALID}
)


class UploadTooLarge(Exception):
    pass


class _Chunks(io.RawIOBase):
    """A readable binary stream over an iterator of byte chunks."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._left = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._left:
            self._left = next(self._chunks, b"")
            if not self._left:
                return 0
        n = min(len(buffer), len(self._left))
        buffer[:n] = self._left[:n]
        self._left = self._left[n:]
        return n


async def _on_stream(request: Request, limit: int, work: Callable[[Iterator[bytes]], Any]) -> Any:
    """``work(chunks)`` in a worker thread while the body streams in; its result, or the
    exception it raised (returned, not raised: a task group would wrap it)."""
    send, recv = anyio.create_memory_object_stream[bytes | BaseException](QUEUE_CHUNKS)

    async def feed() -> None:
        size = 0
        async with send:
            try:
                async for chunk in request.stream():
                    size += len(chunk)
                    if size > limit:
                        await send.send(UploadTooLarge())
                        return
                    if chunk:
                        await send.send(chunk)
            except ClientDisconnect as exc:  # the upload was cut short: store nothing
                await send.send(exc)
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                return  # the reader stopped early (it refused the job)

    def chunks() -> Iterator[bytes]:
        while True:
            try:
                item = anyio.from_thread.run(recv.receive)
            except anyio.EndOfStream:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def run() -> Any:
        try:
            return work(chunks())
        except Exception as exc:
            return exc
        finally:
            anyio.from_thread.run_sync(recv.close)

    async with anyio.create_task_group() as tg:
        tg.start_soon(feed)
        result = await anyio.to_thread.run_sync(run)
    return result


def _row_problem(p: Problem) -> ProblemOut:
    """A problem of recipient ``index`` as the CLI names it: by its row in the file."""
    out = problem_out(p)
    if p.index is None:
        return out
    row = p.index + FIRST_ROW
    # The line ``teledispatch send --csv`` prints for the same row.
    msg = f"row {row} {p.field} = {out.value!r}: {out.rule}"
    return out.model_copy(update={"loc": ["body", "row", row, *p.field.split(".")], "msg": msg})


def _refused(exc: CsvRefused) -> JSONResponse:
    loc: list[str | int] = ["body"] if exc.row is None else ["body", "row", exc.row]
    where = "header" if exc.row is None else f"row {exc.row}"
    problem = ProblemOut(
        loc=loc,
        index=None if exc.row is None else exc.row - FIRST_ROW,
        field="row" if exc.row is not None else "header",
        value=None,
        rule=exc.rule,
        msg=f"{where}: {exc.rule}",
    )
    return unprocessable([problem])


def _answer(result: Any, response: Response, encoding: str, limit: int) -> Any:
    if isinstance(result, ValidationFailed):
        return unprocessable([_row_problem(p) for p in result.problems], result.total)
    if isinstance(result, CsvRefused):
        return _refused(result)
    if isinstance(result, UnicodeDecodeError):
        detail = f"the CSV body is not {encoding} text (invalid byte at offset {result.start})"
        return JSONResponse(status_code=400, content={"detail": detail + "; pass ?encoding="})
    if isinstance(result, UploadTooLarge):
        detail = f"upload over {limit} bytes ([api] max_upload_bytes); split the file"
        return JSONResponse(status_code=413, content={"detail": detail})
    if isinstance(result, IdempotencyConflict):
        return JSONResponse(status_code=409, content={"detail": str(result)})
    if isinstance(result, ClientDisconnect):
        return JSONResponse(status_code=400, content={"detail": "upload cut short"})
    if isinstance(result, BaseException):
        raise result
    if isinstance(result, dict):  # a dry run's report
        return JSONResponse(status_code=200, content=jsonable_encoder(result))
    response.status_code = 201 if result.created else 200
    return Enqueued(job_id=result.job_id, total=result.total, created=result.created)


def _job_options(query: dict[str, Any]) -> SendJob | JSONResponse:
    """The query's options checked by the job model's own rules (a stand-in recipient list,
    since the recipients come in the body)."""
    try:
        return SendJob.model_validate({**query, "recipients": [{}]})
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            found = from_pydantic(dict(err))
            name = found.field.split(".")[0] or "query"
            problems.append(found.model_copy(update={"loc": ["query", name]}))
        return unprocessable(problems)


def _defaults(fields: dict[str, str | None], params: list[str], pairs: list[str]) -> Any:
    defaults: dict[str, Any] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            problem = ProblemOut(
                loc=["query", "default"], index=None, field="default", value=clip_value(pair),
                rule="must be FIELD=VALUE", msg="default: must be FIELD=VALUE",
            )  # fmt: skip
            return unprocessable([problem])
        defaults[name] = value
    defaults.update({k: v for k, v in fields.items() if v is not None})
    if params:
        defaults["template_params"] = params
    return defaults


CSV_BODY = {
    "requestBody": {
        "required": True,
        "description": "CSV text: a header row with a `phone` column, one recipient a row",
        "content": {"text/csv": {"schema": {"type": "string"}}},
    }
}


@router.post(
    "/csv",
    status_code=201,
    response_model=Enqueued,
    openapi_extra=CSV_BODY,
    operation_id="post_job_csv",
    responses={
        201: {"description": "the job is stored", "links": JOB_LINKS},
        200: {
            "model": Enqueued | DryRunOut,
            "description": "an existing job (same idempotency key), or a dry run's report",
        },
        400: {"model": ErrorOut, "description": "the body is not text in `encoding`"},
        409: {"model": ErrorOut, "description": "idempotency key used for other content"},
        413: {"model": ErrorOut, "description": "the body is over `[api] max_upload_bytes`"},
    },
    description="Enqueue a job from a CSV body, read as it arrives; the job's options are "
    "query parameters. 422 lists every problem by row (the header is row 1); nothing is "
    "stored unless every row is valid.",
)
async def post_csv(
    request: Request,
    state: State,
    key: Key,
    response: Response,
    account: Annotated[str, Query(min_length=1, max_length=100)],
    content: Annotated[str | None, Query(description="text for every recipient")] = None,
    template_id: Annotated[str | None, Query()] = None,
    sender_id: Annotated[str | None, Query()] = None,
    task_open_id: Annotated[str | None, Query()] = None,
    param: Annotated[list[str], Query(description="a template parameter (repeat)")] = [],  # noqa: B006
    default: Annotated[
        list[str], Query(description="FIELD=VALUE for every recipient (repeat)")
    ] = [],  # noqa: B006
    idempotency_key: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
    idempotency_header: Annotated[
        str | None, Header(alias="Idempotency-Key", min_length=1, max_length=200)
    ] = None,
    not_before: Annotated[datetime | None, Query()] = None,
    allow_duplicates: bool = False,
    priority: Priority | None = None,
    expires_at: Annotated[datetime | None, Query()] = None,
    ttl_s: Annotated[float | None, Query(gt=0)] = None,
    callback_url: Annotated[str | None, Query(min_length=1, max_length=2000)] = None,
    encoding: Annotated[str, Query(description="the body's text encoding")] = DEFAULT_ENCODING,
    dry_run_: Annotated[bool, Query(alias="dry_run")] = False,
) -> Any:
    cfg = state.cfg()
    if not key.may_use(account) or account not in cfg.accounts:
        refusal = Problem(None, "account", account, "is not an account this API key may use")
        return unprocessable([problem_out(refusal)])
    try:
        "".encode(encoding)
    except LookupError:
        return unprocessable([_encoding_problem(encoding)])
    fields = {"content": content, "template_id": template_id, "sender_id": sender_id}
    defaults = _defaults({**fields, "task_open_id": task_open_id}, param, default)
    if isinstance(defaults, JSONResponse):
        return defaults
    options = {
        "account": account, "defaults": defaults, "not_before": not_before,
        "allow_duplicates": allow_duplicates, "priority": priority, "expires_at": expires_at,
        "ttl_s": ttl_s, "callback_url": callback_url,
        "idempotency_key": idempotency_header or idempotency_key,
    }  # fmt: skip
    job = _job_options(options)
    if isinstance(job, JSONResponse):
        return job
    declared = request.headers.get("content-length", "")
    limit = cfg.api_max_upload_bytes
    if declared.isdigit() and int(declared) > limit:
        return _answer(UploadTooLarge(), response, encoding, limit)

    # The upload names an account (a required query parameter): never a route.
    account_name = job.account
    assert account_name is not None

    def work(chunks: Iterator[bytes]) -> Any:
        text = io.TextIOWrapper(io.BufferedReader(_Chunks(chunks)), encoding, newline="")
        rows = csv_recipients(text, "upload")
        if dry_run_:
            report = dry_run(
                account_name, rows, defaults=job.defaults, not_before=job.not_before,
                allow_duplicates=job.allow_duplicates, cfg=cfg,
            )  # fmt: skip
            return report.as_dict()
        return enqueue_stream(
            account_name, rows, defaults=job.defaults,
            idempotency_key=key.idempotency_key(job.idempotency_key),
            not_before=job.not_before, allow_duplicates=job.allow_duplicates,
            priority=job.priority, expires_at=job.expires_at, ttl_s=job.ttl_s,
            callback_url=job.callback_url, weight=job.weight, quiet_hours=job.quiet_hours,
            cfg=cfg,
        )  # fmt: skip

    return _answer(await _on_stream(request, limit, work), response, encoding, limit)


def _encoding_problem(encoding: str) -> ProblemOut:
    rule = "is not a known text encoding (e.g. utf-8, gbk)"
    return ProblemOut(
        loc=["query", "encoding"], index=None, field="encoding", value=clip_value(encoding),
        rule=rule, msg=f"encoding: {rule}",
    )  # fmt: skip
