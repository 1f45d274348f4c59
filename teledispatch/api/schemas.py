"""The API's response models: what the OpenAPI document promises."""

from __future__ import annotations

from typing import Any, Literal

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


class SkippedOut(BaseModel):
    reason: str
    count: int


class RetryIn(BaseModel):
    statuses: list[Literal["failed", "unknown"]] = Field(
        default=["failed"],
        min_length=1,
        description="which finished messages; unknown ones may have been sent and are "
        "counted as skipped, never sent again",
    )
    error_codes: list[str] = Field(
        default_factory=list, max_length=100, description="only messages with these codes"
    )


class RetryOut(BaseModel):
    job_id: str
    #: New messages queued, each linked to the one it retries (``retry_of``).
    retried: int
    #: Chosen messages not sent again, by reason.
    skipped: list[SkippedOut]


class JobSummary(BaseModel):
    job_id: str
    account: str
    channel: str
    priority: str
    total: int
    accepted: int
    counts: dict[str, int]
    progress: float = Field(description="finished messages / total, 0..1")
    done: bool
    cancelled: bool
    created_at: str


class JobPage(BaseModel):
    jobs: list[JobSummary]
    #: Pass as ``cursor`` for the next (older) page; null on the last page.
    next_cursor: str | None


class FailureExample(BaseModel):
    id: str
    phone: str
    error_text: str | None
    at: str | None


class FailureGroup(BaseModel):
    status: str
    error_code: str | None
    count: int
    examples: list[FailureExample]


class Failures(BaseModel):
    job_id: str
    groups: list[FailureGroup]


class WaitingError(BaseModel):
    error_code: str | None
    count: int
    last_at: str | None
    example: str | None


class AccountView(BaseModel):
    account: str
    channel: str
    circuit: dict[str, Any] | None = Field(
        description="state (closed, open, half_open), reason, since, next_probe; "
        "null when Redis cannot be read"
    )
    limits: dict[str, float | None] = Field(description="configured limits; null: none")
    in_use: dict[str, int] | None = Field(
        description="requests and messages that left in the last second (accounts with a "
        "per-second limit); null when Redis cannot be read"
    )
    backlog: dict[str, int] = Field(description="queued, deferred, sending, unknown")
    oldest_due_age_s: float
    waiting_errors: list[WaitingError] = Field(
        description="errors the backlog waits on (retries, holds, reconciliation), by code"
    )


class RouteMemberView(BaseModel):
    account: str
    circuit: dict[str, Any] | None = Field(
        description="as in GET /v1/accounts; null when Redis cannot be read"
    )


class RouteDestinationView(BaseModel):
    prefix: str = Field(description="country code the list serves; '*' for every other number")
    members: list[RouteMemberView] = Field(description="in the order messages try them")
    first_choice: str | None = Field(
        description="the member a new message goes to now: the first with a closed circuit; "
        "null when none is closed (or Redis cannot be read)"
    )


class RouteView(BaseModel):
    route: str
    destinations: list[RouteDestinationView] = Field(
        description="longest country code first, '*' last"
    )


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


class RateLimitedOut(BaseModel):
    detail: str
    #: The same wait as the ``Retry-After`` header, unrounded.
    retry_after_s: float


NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": ErrorOut}}
#: Every route behind an API key: a missing or wrong key, or one over its request rate.
UNAUTHORIZED: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorOut},
    429: {
        "model": RateLimitedOut,
        "description": "over the key's request rate (`rate_per_s`, `burst`)",
        "headers": {
            "Retry-After": {
                "description": "whole seconds (at least 1) until a request would be admitted",
                "schema": {"type": "integer", "minimum": 1},
            }
        },
    },
}
INVALID: dict[int | str, dict[str, Any]] = {422: {"model": ValidationError422}}
#: What the request guard (``guards``) answers before any route runs.
BODY_REFUSED: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorOut, "description": "the JSON body is not UTF-8"},
    413: {"model": ErrorOut, "description": "the body is over `[api] max_body_bytes`"},
}
