"""Writing a part of a job to the database: the moment its recipients become durable."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from producer.store import CANCELLED, QUEUED
from worker import repo
from worker.context import Context
from worker.kick import kick
from worker.providers.registry import adapter_for

log = logging.getLogger("teledispatch.accept")


class RejectedPart(ValueError):
    """A part that cannot be accepted (malformed, or for a job that does not exist)."""


def accept_part(ctx: Context, job_id: str, part_no: int, rows_json: str) -> int:
    """Insert a part's recipients as ``queued``; returns how many rows it carried.

    Idempotent: message ids are ``<job>-<index>``, and rows already present are skipped, so a
    redelivered or re-published part changes nothing.
    """
    now = time.time()
    try:
        rows = json.loads(rows_json)
        if not isinstance(rows, list):
            raise ValueError("part is not a list")
    except ValueError as exc:
        raise RejectedPart(f"job {job_id} part {part_no}: {exc}") from None
    with ctx.engine.begin() as conn:
        job = repo.job_header(conn, job_id)
        if job is None:
            raise RejectedPart(f"job {job_id} part {part_no}: no such job")
        account = ctx.settings.account(job.account)
        adapter = adapter_for(account.channel)
        due = max(now, job.not_before or 0.0)
        status = CANCELLED if job.cancelled_at is not None else QUEUED
        records: list[dict[str, Any]] = []
        for row in rows:
            index, fields = _unpack(row, job_id, part_no)
            records.append(
                {
                    "id": f"{job_id}-{index}",
                    "job_id": job_id,
                    "seq": index,
                    "account": job.account,
                    "channel": job.channel,
                    "phone": fields["phone"],
                    "group_key": adapter.group_key(fields),
                    "payload": json.dumps(fields, ensure_ascii=False, separators=(",", ":")),
                    "status": status,
                    "due_at": due,
                    "attempts": 0,
                    "created_at": now,
                    "updated_at": now,
                }
            )
        repo.insert_messages(conn, records)
    if status == QUEUED:
        kick(ctx, account, delay_s=max(account.linger_ms / 1000, due - time.time()))
    return len(records)


def _unpack(row: Any, job_id: str, part_no: int) -> tuple[int, dict[str, Any]]:
    if (
        isinstance(row, list)
        and len(row) == 2
        and isinstance(row[0], int)
        and isinstance(row[1], dict)
        and isinstance(row[1].get("phone"), str)
    ):
        return row[0], row[1]
    raise RejectedPart(f"job {job_id} part {part_no}: malformed row {str(row)[:100]!r}")
