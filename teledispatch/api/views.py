"""What the operator console reads, as JSON: the job list, a job's failures by code, the
accounts (circuit, rate in use against the limits, backlog, waiting errors) and the routes
(members in order, their circuits, the member a new message goes to).

Behind the same keys as every ``/v1`` route, scoped the same way: a key sees the jobs and
accounts of its accounts only, and the routes it may use.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import redis
from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse

from teledispatch import circuits
from teledispatch.api.deps import Key, State, require_key
from teledispatch.api.problems import query_problem
from teledispatch.api.schemas import (
    INVALID,
    NOT_FOUND,
    UNAUTHORIZED,
    AccountView,
    FailureExample,
    FailureGroup,
    Failures,
    JobPage,
    JobSummary,
    RouteDestinationView,
    RouteMemberView,
    RouteView,
    WaitingError,
)
from teledispatch.config import AccountConfig, Settings
from teledispatch.db import jobs as jobs_db
from teledispatch.db import messages as messages_db
from teledispatch.priorities import PRIORITIES, Priority, priority_word
from teledispatch.rate_use import rate_use
from teledispatch.statuses import ACTIVE_STATUSES

router = APIRouter(prefix="/v1", dependencies=[Depends(require_key)], responses=UNAUTHORIZED)

JobState = Literal["active", "done", "cancelled"]


def _iso(epoch: float | None) -> str | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, UTC).isoformat()


def _epoch(name: str, text: str | None) -> float | None:
    if text is None:
        return None
    when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if when.tzinfo is None:
        raise ValueError(f"{name} needs a time zone (2026-05-01T09:00+08:00, or Z for UTC)")
    return when.timestamp()


def _summary(row: Any, counts: dict[str, int]) -> JobSummary:
    accepted = sum(counts.values())
    finished = sum(n for s, n in counts.items() if s not in ACTIVE_STATUSES)
    return JobSummary(
        job_id=row.id,
        account=row.account,
        channel=row.channel,
        priority=priority_word(row.priority),
        total=row.total,
        accepted=accepted,
        counts=dict(sorted(counts.items())),
        progress=round(finished / row.total, 6) if row.total else 1.0,
        done=not row.active and accepted >= row.total,
        cancelled=row.cancelled_at is not None,
        created_at=_iso(row.created_at) or "",
    )


@router.get("/jobs", response_model=JobPage, responses=INVALID)
def list_jobs(
    state: State,
    key: Key,
    account: Annotated[str | None, Query(description="only this account's jobs")] = None,
    status: Annotated[JobState | None, Query(description="active, done or cancelled")] = None,
    priority: Annotated[Priority | None, Query()] = None,
    created_from: Annotated[str | None, Query(description="ISO 8601 with a time zone")] = None,
    created_to: Annotated[str | None, Query(description="ISO 8601 with a time zone")] = None,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> Any:
    """Jobs newest first, with their counts per status and progress."""
    bounds: list[float | None] = []
    for name, text in (("created_from", created_from), ("created_to", created_to)):
        try:
            bounds.append(_epoch(name, text))
        except ValueError as exc:
            return query_problem(name, text, str(exc))
    start, end = bounds
    scope = key.accounts
    if account is not None:
        # Another tenant's account lists nothing, as if it had no jobs.
        scope = frozenset({account} if key.may_use(account) else set())
    where = jobs_db.JobFilter(
        accounts=scope,
        priority=None if priority is None else PRIORITIES[priority],
        created_from=start,
        created_to=end,
        state=status,
    )
    with state.engine().connect() as conn:
        rows = jobs_db.list_jobs(conn, where, messages_db.has_active, before=cursor, limit=limit)
        counts = messages_db.status_counts_of(conn, [r.id for r in rows])
    jobs = [_summary(r, counts[r.id]) for r in rows]
    return JobPage(jobs=jobs, next_cursor=rows[-1].id if len(rows) == limit else None)


@router.get("/jobs/{job_id}/failures", response_model=Failures, responses=NOT_FOUND)
def job_failures(state: State, key: Key, job_id: str) -> Any:
    """The job's failed, unknown, undelivered and expired messages by status and error
    code, biggest first, with a few examples each."""
    with state.engine().connect() as conn:
        job = jobs_db.get_job(conn, job_id)
        if job is None or not key.may_use(job.account):
            return JSONResponse(status_code=404, content={"detail": f"no job {job_id!r}"})
        groups = messages_db.failure_groups(conn, job_id)
    return Failures(
        job_id=job_id,
        groups=[
            FailureGroup(
                status=g.status,
                error_code=g.error_code,
                count=int(g.n),
                examples=[
                    FailureExample(
                        id=e.id, phone=e.phone, error_text=e.error_text, at=_iso(e.updated_at)
                    )
                    for e in examples
                ],
            )
            for g, examples in groups
        ],
    )


def _limits(account: AccountConfig) -> dict[str, float | None]:
    return {
        "requests_per_second": account.max_requests_per_second,
        "messages_per_second": account.max_messages_per_second,
        "messages_per_hour": account.max_messages_per_hour,
        "messages_per_day": account.max_messages_per_day,
        "concurrency": account.concurrency,
    }


def _circuit(client: redis.Redis[Any], name: str) -> dict[str, Any]:
    """The account's circuit as both views show it (raises redis.RedisError)."""
    view = circuits.view(client, name)
    return {
        "state": view.state,
        "reason": view.reason or None,
        "since": _iso(view.since),
        "next_probe": _iso(view.next_probe),
        "line": view.describe(),
    }


def _live(cfg: Settings, name: str) -> tuple[dict[str, Any] | None, dict[str, int] | None]:
    """The account's circuit and rate in use; None each when Redis cannot be read (the
    console must show the database's half when the limits' store is down)."""
    try:
        client = circuits.redis_client(cfg.redis_url)
        circuit = _circuit(client, name)
        use = rate_use(client, name)
    except redis.RedisError:
        return None, None
    return circuit, {"requests_per_second": use.requests, "messages_per_second": use.messages}


@router.get("/accounts", response_model=list[AccountView])
def list_accounts(state: State, key: Key) -> Any:
    """Each account the key may use: circuit, rate in use against its limits, backlog,
    the oldest due message's age and the errors its backlog waits on."""
    cfg = state.cfg()
    accounts = sorted(
        (a for a in cfg.accounts.values() if key.may_use(a.name)), key=lambda a: a.name
    )
    now = time.time()
    engine = state.engine()
    found = messages_db.active_backlog(engine, [(a.channel, a.name) for a in accounts], now)
    backlog: dict[str, dict[str, int]] = {a.name: {} for a in accounts}
    for _, name, status, n in found.counts:
        backlog[name][status] = n
    oldest = {name: max(0.0, now - due) for _, name, due in found.oldest_due}
    with engine.connect() as conn:
        errors = {a.name: messages_db.waiting_errors(conn, a.name) for a in accounts}
    out = []
    for a in accounts:
        circuit, in_use = _live(cfg, a.name)
        out.append(
            AccountView(
                account=a.name,
                channel=a.channel,
                circuit=circuit,
                limits=_limits(a),
                in_use=in_use,
                backlog=backlog[a.name],
                oldest_due_age_s=round(oldest.get(a.name, 0.0), 3),
                waiting_errors=[
                    WaitingError(
                        error_code=e.error_code,
                        count=int(e.n),
                        last_at=_iso(e.last_at),
                        example=e.example,
                    )
                    for e in errors[a.name]
                ],
            )
        )
    return out


def _circuits(cfg: Settings, names: list[str]) -> dict[str, dict[str, Any] | None]:
    """Each account's circuit, read once however many lists name it; None when Redis cannot
    be read."""
    try:
        client = circuits.redis_client(cfg.redis_url)
        return {name: _circuit(client, name) for name in sorted(set(names))}
    except redis.RedisError:
        return dict.fromkeys(names)


def _destination(
    prefix: str, accounts: tuple[str, ...], shown: dict[str, dict[str, Any] | None]
) -> RouteDestinationView:
    members = [RouteMemberView(account=a, circuit=shown[a]) for a in accounts]
    # Where dispatch sends a new message: the first member it would not pause for.
    first = next(
        (m.account for m in members if m.circuit is not None and m.circuit["state"] == "closed"),
        None,
    )
    return RouteDestinationView(prefix=prefix, members=members, first_choice=first)


@router.get("/routes", response_model=list[RouteView])
def list_routes(state: State, key: Key) -> Any:
    """Each route the key may use: per country code its members in order, each member's
    circuit, and the member a new message would go to now."""
    cfg = state.cfg()
    routes = sorted(
        (r for r in cfg.routes.values() if key.may_use_route(r.name)), key=lambda r: r.name
    )
    shown = _circuits(cfg, [a for r in routes for a in r.all_accounts])
    return [
        RouteView(
            route=r.name,
            destinations=[_destination(prefix, accounts, shown) for prefix, accounts in r.lists],
        )
        for r in routes
    ]
