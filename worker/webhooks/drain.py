"""Draining the outbox: per endpoint, in ``seq`` order, one signed JSON batch at a time.

At least once: an event is marked delivered only after its request got a 2xx, so a worker
killed in between sends it again (receivers deduplicate by ``id``). In order per endpoint:
a batch that failed blocks the endpoint's later events until it is delivered or dead, and
one task at a time works on an endpoint (a Redis lock); other endpoints have their own
tasks, so a slow or dead receiver delays nobody else's events.
"""

from __future__ import annotations

import functools
import json
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import redis
from sqlalchemy.engine import Engine

from teledispatch.config import Settings
from teledispatch.db import events as events_db
from teledispatch.db import jobs as jobs_db
from teledispatch.db import messages as messages_db
from teledispatch.db.tables import AnyRow
from teledispatch.worker.context import Clock
from teledispatch.worker.webhooks.client import Answer, Post
from teledispatch.worker.webhooks.safety import UnsafeUrl, check_url
from teledispatch.worker.webhooks.schedule import next_attempt, retry_after_s
from teledispatch.worker.webhooks.signer import HEADER, signature

log = logging.getLogger("teledispatch.webhooks")

#: One delivery task works on its endpoint for about this long, then yields its process.
BUDGET_S = 5.0
#: ``job.done`` checks per drain.
FINISH_LIMIT = 500
#: How long a queued delivery task keeps the drain from queueing another for its endpoint.
#: Short: a task reserved by a worker that was then killed is only redelivered after the
#: broker's visibility timeout, and until this expires nobody delivers to that endpoint; a
#: second task queued behind a live one only finds the endpoint's lock taken.
QUEUED_TTL_S = 15


@dataclass
class Report:
    delivered: int = 0
    retried: int = 0
    dead: int = 0


def finish_jobs(engine: Engine, now: float, limit: int = FINISH_LIMIT) -> int:
    """Write ``job.done`` for jobs with a callback that have nothing active left.

    Checked here, from committed state, rather than by each status write: two transactions
    finishing a job's last messages at once would each see the other's still active."""
    written = 0
    with engine.begin() as conn:
        for job in jobs_db.open_with_callback(conn, limit):
            if messages_db.job_is_finished(conn, job.id, job.total) and jobs_db.claim_done(
                conn, job.id, now
            ):
                signer = jobs_db.signer_of(job.account, job.route)
                events_db.insert_job_done(conn, job.id, signer, job.callback_url, now)
                written += 1
    return written


# Cached: a batch's events share a few ``occurred_at`` values (one per outcome batch), and
# formatting each again was a tenth of the delivery task's CPU.
@functools.lru_cache(maxsize=4096)
def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def event_json(row: AnyRow) -> dict[str, Any]:
    """One event as the receiver sees it (README "Webhooks")."""
    return {
        "id": row.event_id,
        "type": row.type,
        "job_id": row.job_id,
        "message_id": row.message_id,
        "phone": row.phone,
        "status": row.status,
        "provider_id": row.provider_id,
        "error_code": row.error_code,
        "error_text": row.error_text,
        "occurred_at": _iso(row.occurred_at),
    }


def body_of(batch: Sequence[AnyRow]) -> bytes:
    return json.dumps({"events": [event_json(r) for r in batch]}, ensure_ascii=False).encode()


def _same_account(batch: Sequence[AnyRow]) -> list[AnyRow]:
    """The batch's leading run of one account's events: one request, one signing secret."""
    first = batch[0].account
    run: list[AnyRow] = []
    for row in batch:
        if row.account != first:
            break
        run.append(row)
    return run


def secret_of(cfg: Settings, signer: str) -> str:
    """The signing secret of an event's signer (``jobs.signer_of``): the route's for a
    routed job if it has one, else the account's; "" if neither has one."""
    name, _, route_name = signer.rpartition("@") if "@" in signer else (signer, "", "")
    route = cfg.routes.get(route_name) if route_name else None
    if route is not None and route.callback_secret:
        return route.callback_secret
    account = cfg.accounts.get(name)
    return account.callback_secret.get_secret_value() if account is not None else ""


def _attempt(cfg: Settings, batch: Sequence[AnyRow], now: float, post: Post) -> Answer:
    head = batch[0]
    secret = secret_of(cfg, head.account)
    if not secret:
        return Answer(400, None, f"{head.account!r} has no callback_secret")
    try:
        check_url(head.url, cfg.webhooks)
    except UnsafeUrl as exc:
        return Answer(400, None, f"unsafe URL: {exc}")
    body = body_of(batch)
    headers = {
        "Content-Type": "application/json",
        HEADER: signature(secret.encode(), body, int(now)),
    }
    return post(head.url, body, headers)


def deliver_batch(
    engine: Engine, cfg: Settings, batch: Sequence[AnyRow], now: float, post: Post
) -> Answer:
    """One request for ``batch`` and its outcome written back."""
    answer = _attempt(cfg, batch, now, post)
    seqs = [int(r.seq) for r in batch]
    head = batch[0]
    if answer.delivered:
        events_db.mark_delivered(engine, head.endpoint, seqs, now)
        return answer
    error = answer.error or f"HTTP {answer.status}"
    if answer.retryable:
        at, dead = next_attempt(
            now=now,
            attempts=int(head.attempts) + 1,
            first_failed_at=head.first_failed_at,
            retry_after=retry_after_s(answer.retry_after, now),
            cfg=cfg.webhooks,
        )
    else:
        # Another answer (4xx, a redirect, an unusable URL or secret) will not change by
        # itself: dead-lettered now, replayable once fixed.
        at, dead = now, True
    events_db.mark_failed(engine, head.endpoint, seqs, now, at, error, dead)
    log.warning(
        "webhook endpoint %s: %d events %s (%s)",
        head.endpoint,
        len(seqs),
        "dead-lettered" if dead else "retried",
        error,
    )
    return answer


def deliver(
    engine: Engine,
    cfg: Settings,
    endpoint: str,
    *,
    clock: Clock,
    post: Post,
    budget_s: float = BUDGET_S,
) -> Report:
    """Deliver ``endpoint``'s due events, batch after batch, until none is due, a batch
    fails, or ``budget_s`` is spent."""
    report = Report()
    start = clock()
    while clock() - start < budget_s:
        batch = events_db.head_batch(engine, endpoint, cfg.webhooks.batch_size)
        now = clock()
        if not batch or batch[0].next_attempt_at > now:
            break
        batch = _same_account(batch)
        answer = deliver_batch(engine, cfg, batch, now, post)
        if answer.delivered:
            report.delivered += len(batch)
            continue
        report.retried += len(batch)
        break
    return report


def _lock_key(endpoint: str) -> str:
    return f"td:webhook:lock:{endpoint}"


def queued_key(endpoint: str) -> str:
    """Set while a delivery task for ``endpoint`` is queued, so the drain queues one only."""
    return f"td:webhook:queued:{endpoint}"


def deliver_locked(
    r: redis.Redis[bytes],
    engine: Engine,
    cfg: Settings,
    endpoint: str,
    *,
    clock: Clock,
    post: Post,
) -> Report | None:
    """:func:`deliver` under the endpoint's lock (None: another task holds it)."""
    r.delete(queued_key(endpoint))
    token = uuid.uuid4().hex.encode()
    ttl_s = int(BUDGET_S + cfg.webhooks.timeout_s * 2 + 5)
    if not r.set(_lock_key(endpoint), token, nx=True, ex=ttl_s):
        return None
    try:
        return deliver(engine, cfg, endpoint, clock=clock, post=post)
    finally:
        # Not atomic, but the lock outlives the work by its margin: a holder past its TTL
        # could only delete a successor's lock in the instant between these two calls.
        if r.get(_lock_key(endpoint)) == token:
            r.delete(_lock_key(endpoint))


def due(r: redis.Redis[bytes], engine: Engine, now: float) -> list[str]:
    """Endpoints with due events and no delivery task queued yet (each is now marked
    queued); ``job.done`` events are written first."""
    finish_jobs(engine, now)
    picked = []
    for endpoint in events_db.due_endpoints(engine, now):
        if r.set(queued_key(endpoint), b"1", nx=True, ex=QUEUED_TTL_S):
            picked.append(endpoint)
    return picked


__all__ = [
    "BUDGET_S",
    "Report",
    "body_of",
    "deliver",
    "deliver_batch",
    "deliver_locked",
    "due",
    "event_json",
    "finish_jobs",
    "queued_key",
]
