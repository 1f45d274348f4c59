"""A job's outcomes as rows, one per recipient, read page by page (keyset on the message id):
the one row builder behind ``teledispatch export`` and ``GET /v1/jobs/{id}/messages.csv``.

Flat memory however big the job: one page of rows is held at a time, each page one short
read (never a cursor or a transaction open for the whole export), and the lines are yielded
as they are built, so a caller writes them out before the next page is read.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.engine import Engine

from teledispatch.db import messages as messages_db

#: Rows per query.
PAGE = 1000
COLUMNS = (
    "message_id",
    "phone",
    "status",
    "provider_id",
    "error_code",
    "error_text",
    "attempts",
    "encoding",
    "segments",
    "created_at",
    "sent_at",
    "final_at",
    "updated_at",
    "fields",
)


def _iso(t: float | None) -> str | None:
    if t is None:
        return None
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def rows(engine: Engine, job_id: str, page_size: int = PAGE) -> Iterator[dict[str, Any]]:
    """The job's recipients' outcomes in message-id order; ``fields``: the recipient's own
    (validated) fields."""
    after: str | None = None
    while True:
        with engine.connect() as conn:
            page = messages_db.job_messages_page(conn, job_id, after=after, limit=page_size)
        for r in page:
            yield {
                "message_id": r.id,
                "phone": r.phone,
                "status": r.status,
                "provider_id": r.provider_id,
                "error_code": r.error_code,
                "error_text": r.error_text,
                "attempts": r.attempts,
                "encoding": r.encoding,
                "segments": r.segments,
                "created_at": _iso(r.created_at),
                "sent_at": _iso(r.sent_at),
                "final_at": _iso(r.final_at),
                "updated_at": _iso(r.updated_at),
                "fields": messages_db.payload_of(r.payload),
            }
        if len(page) < page_size:
            return
        after = page[-1].id


def jsonl_lines(records: Iterator[dict[str, Any]]) -> Iterator[str]:
    for record in records:
        yield json.dumps(record, ensure_ascii=False) + "\n"


def csv_lines(records: Iterator[dict[str, Any]]) -> Iterator[str]:
    """A header line, then one line per record. The fields differ per channel and
    recipient: one JSON cell keeps the columns fixed."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS)

    def take() -> str:
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text

    writer.writeheader()
    yield take()
    for record in records:
        writer.writerow(record | {"fields": json.dumps(record["fields"], ensure_ascii=False)})
        yield take()


def lines(records: Iterator[dict[str, Any]], fmt: str) -> Iterator[str]:
    """``csv`` or ``jsonl`` lines of ``records``."""
    return jsonl_lines(records) if fmt == "jsonl" else csv_lines(records)


__all__ = ["COLUMNS", "PAGE", "csv_lines", "jsonl_lines", "lines", "rows"]
