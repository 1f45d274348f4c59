"""``teledispatch export JOB_ID [--format csv|jsonl]``: a job's outcomes, one line per
recipient, streamed page by page (keyset on the message id), so memory stays flat however
big the job is."""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, TextIO

#: Rows per query: one short read each, never a cursor held open for the whole export.
PAGE = 1000
COLUMNS = (
    "message_id",
    "phone",
    "status",
    "provider_id",
    "error_code",
    "error_text",
    "attempts",
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


def rows(engine: Any, job_id: str) -> Iterator[dict[str, Any]]:
    """The job's recipients' outcomes in message-id order; ``fields``: the recipient's own
    (validated) fields."""
    from teledispatch.db import messages as messages_db

    after: str | None = None
    while True:
        with engine.connect() as conn:
            page = messages_db.job_messages_page(conn, job_id, after=after, limit=PAGE)
        for r in page:
            yield {
                "message_id": r.id,
                "phone": r.phone,
                "status": r.status,
                "provider_id": r.provider_id,
                "error_code": r.error_code,
                "error_text": r.error_text,
                "attempts": r.attempts,
                "created_at": _iso(r.created_at),
                "sent_at": _iso(r.sent_at),
                "final_at": _iso(r.final_at),
                "updated_at": _iso(r.updated_at),
                "fields": messages_db.payload_of(r.payload),
            }
        if len(page) < PAGE:
            return
        after = page[-1].id


def write(records: Iterator[dict[str, Any]], fmt: str, out: TextIO) -> int:
    n = 0
    if fmt == "jsonl":
        for record in records:
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
            n += 1
        return n
    writer = csv.DictWriter(out, fieldnames=COLUMNS)
    writer.writeheader()
    for record in records:
        # The fields differ per channel and recipient: one JSON cell keeps the columns fixed.
        record["fields"] = json.dumps(record["fields"], ensure_ascii=False)
        writer.writerow(record)
        n += 1
    return n


def cmd_export(args: argparse.Namespace) -> int:
    from teledispatch.config import settings
    from teledispatch.db import jobs as jobs_db
    from teledispatch.db.engine import get_engine
    from teledispatch.db.migrate import ensure_schema

    url = settings().database_url
    ensure_schema(url)
    engine = get_engine(url)
    with engine.connect() as conn:
        if jobs_db.get_job(conn, args.job_id) is None:
            print(f"error: job {args.job_id!r} not found", file=sys.stderr)
            return 2
    write(rows(engine, args.job_id), args.format, sys.stdout)
    return 0


def register(sub: Any) -> None:
    e = sub.add_parser("export", help="a job's outcomes, one row per recipient (streamed)")
    e.add_argument("job_id")
    e.add_argument("--format", choices=("csv", "jsonl"), default="csv")
    e.set_defaults(func=cmd_export)
