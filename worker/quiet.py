"""Quiet hours at claim time: a claimed message whose recipient's hour is still quiet (a
retry or a rate-window hold that came due at night) goes back ``deferred`` to the opening.

The producer already stores messages that enqueue in quiet hours as ``deferred`` until
their window opens; this is the second check, for messages that came due some other way.
The decision is :mod:`teledispatch.quiet_hours`'; the window is the job's, as resolved and
stored at enqueue (``jobs.quiet_hours``).
"""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy.engine import Engine

from teledispatch.db import jobs as jobs_db
from teledispatch.db import messages as repo
from teledispatch.quiet_hours import QUIET_CODE, Window, hold_for

#: (engine, job id) → its window or None: stored once per job and never changed, so each
#: process asks once per job, not once per claim.
_windows: dict[tuple[Engine, str], Window | None] = {}
_WINDOWS_MAX = 10_000


def _job_windows(
    engine: Engine, job_ids: set[str], known: Mapping[str, str | None]
) -> dict[str, Window | None]:
    for job_id in job_ids & known.keys():
        if (engine, job_id) not in _windows:
            text = known[job_id]
            _remember(engine, job_id, Window.parse(text) if text else None)
    missing = [j for j in job_ids if (engine, j) not in _windows]
    if missing:
        with engine.connect() as conn:
            found = jobs_db.quiet_hours_of(conn, sorted(missing))
        for job_id in missing:
            text = found.get(job_id)
            _remember(engine, job_id, Window.parse(text) if text else None)
    return {j: _windows.get((engine, j)) for j in job_ids}


def _remember(engine: Engine, job_id: str, window: Window | None) -> None:
    if len(_windows) >= _WINDOWS_MAX:
        _windows.clear()
    _windows[(engine, job_id)] = window


def hold_quiet(
    engine: Engine,
    token: str,
    rows: list[repo.Claimed],
    now: float,
    known: Mapping[str, str | None] | None = None,
) -> tuple[list[repo.Claimed], int]:
    """The claimed rows that may go now, and how many went back ``deferred`` (their attempt
    given back) until their recipient's quiet hours end. ``known``: jobs' stored windows
    already read (the claim reads them with its lanes); others are looked up."""
    windows = _job_windows(engine, {r.job_id for r in rows}, known or {})
    if not any(windows.values()):
        return rows, 0
    keep: list[repo.Claimed] = []
    held: dict[str, list[repo.Update]] = {}
    for row in rows:
        window = windows.get(row.job_id)
        found = hold_for(window, row.phone, now) if window is not None else None
        if found is None:
            keep.append(row)
        else:
            update = repo.Update.deferred(row.id, found.until, QUIET_CODE, found.reason)
            held.setdefault(row.group_key, []).append(update)
    sending = {r.group_key for r in keep}
    for group, updates in held.items():
        # A request none of whose rows is left needs no batch row (its lease) any more.
        repo.apply(engine, token, updates, now, finish=None if group in sending else group)
    return keep, sum(map(len, held.values()))
