"""The webhook outbox: events for the rows a transaction changed."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from teledispatch.db import events as events_db
from teledispatch.db import jobs as jobs_db
from teledispatch.db.messages._common import m
from teledispatch.statuses import ACTIVE_STATUSES

#: Changes a webhook does not report: claims, retries and rate-window holds are the
#: dispatcher's business; an app hears of what it can act on (sent, failed, delivered, …).
QUIET_STATUSES = frozenset(ACTIVE_STATUSES)
_EVENT_COLUMNS = (m.id, m.job_id, m.phone, m.status, m.provider_id, m.error_code, m.error_text)
#: The same columns for a text statement's ``RETURNING``: a writer that returns them spares
#: :func:`record_changes` its read-back of the rows (a round trip per outcome batch).
EVENT_RETURNING = "RETURNING " + ", ".join(f"messages.{c.name}" for c in _EVENT_COLUMNS)
#: (engine, job id) → (account, callback_url): a job's callback never changes once stored, so
#: each process asks once per job instead of once per batch (the dispatch hot path). Keyed
#: by engine too: one process may use several databases (tests reuse job ids across them).
_targets_cache: dict[tuple[Engine, str], tuple[str, str | None]] = {}
_TARGETS_CACHE_MAX = 10_000


def _targets(conn: sa.Connection, job_ids: Iterable[str]) -> dict[str, tuple[str, str]]:
    """``job id → (account, url)`` of those of ``job_ids`` that have a callback."""
    engine = conn.engine
    wanted = set(job_ids)
    missing = [j for j in wanted if (engine, j) not in _targets_cache]
    if missing:
        found = jobs_db.callbacks(conn, missing)
        if len(_targets_cache) + len(found) > _TARGETS_CACHE_MAX:
            _targets_cache.clear()
        _targets_cache.update(((engine, j), target) for j, target in found.items())
    out: dict[str, tuple[str, str]] = {}
    for job_id in wanted:
        account, url = _targets_cache.get((engine, job_id), ("", None))
        if url:
            out[job_id] = (account, url)
    return out


def record_changes(conn: sa.Connection, changed: Sequence[Any], now: float) -> None:
    """Outbox events for rows ``(id, job_id)`` this transaction just changed; nothing (one
    cached lookup) when their jobs have no callback. Rows that already hold all the event
    columns (:data:`EVENT_RETURNING`) are used as they are, in the order given."""
    if not changed:
        return
    targets = _targets(conn, {r[1] for r in changed})
    if not targets:
        return
    if len(changed[0]) == len(_EVENT_COLUMNS):
        rows = [r for r in changed if r[1] in targets and r[3] not in QUIET_STATUSES]
        events_db.insert_events(conn, targets, rows, now)
        return
    ids = [r[0] for r in changed if r[1] in targets]
    order = {message_id: i for i, message_id in enumerate(ids)}
    rows = list(conn.execute(sa.select(*_EVENT_COLUMNS).where(m.id.in_(ids))).all())
    rows.sort(key=lambda r: order[r[0]])
    events_db.insert_events(conn, targets, [r for r in rows if r[3] not in QUIET_STATUSES], now)
