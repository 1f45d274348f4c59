"""The API's response models: what the OpenAPI document promises."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from teledispatch.producer.lookup import MessageView


class Enqueued(BaseModel):
    job_id: str
    total: int
    #: False when an earlier job with the same idempotency key was returned.
    created: bool


class DryRunProblem(BaseModel):
    index: int | None
    field: str
    value: Any
    rule: str


class DryRunOut(BaseModel):
    """``POST /v1/jobs?dry_run=true``: what the job would do; nothing was enqueued."""

    account: str
    channel: str
    recipients: int = Field(description="recipients that would be enqueued")
    invalid: int = Field(description="rows refused (reasons in problems)")
    duplicates: int
    suppressed: int
    segments: dict[str, int] = Field(description="SMS segments per encoding")
    cost: float | None = Field(description="estimate from the account's price table")
    unpriced: int
    backlog: int = Field(description="the account's messages already waiting")
    eta: str | None = Field(description="ISO 8601; null when the account sets no rate limit")
    problems: list[DryRunProblem]
    problems_total: int


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
    segments: dict[str, int] = Field(
        default_factory=dict, description="SMS segments per encoding (gsm7, ucs2)"
    )
    paused: str | None = Field(
        default=None,
        description="while the job's account is paused by its circuit: "
        "'paused: <reason> since <time>, next probe at <time>'; else null",
    )
    route: str | None = Field(
        default=None, description="the route the job named (account: its first account)"
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


NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": ErrorOut}}
UNAUTHORIZED: dict[int | str, dict[str, Any]] = {401: {"model": ErrorOut}}
INVALID: dict[int | str, dict[str, Any]] = {422: {"model": ValidationError422}}
#: What the request guard (``guards``) answers before any route runs.
BODY_REFUSED: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorOut, "description": "the JSON body is not UTF-8"},
    413: {"model": ErrorOut, "description": "the body is over `[api] max_body_bytes`"},
}
