"""``teledispatch export JOB_ID [--format csv|jsonl]``: a job's outcomes, one line per
recipient, streamed page by page (:mod:`teledispatch.exports`, shared with the API's
``messages.csv``), so memory stays flat however big the job is."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from typing import Any, TextIO


def write(records: Iterator[dict[str, Any]], fmt: str, out: TextIO) -> int:
    """Write ``records`` as ``fmt`` lines to ``out``; returns how many records."""
    from teledispatch.exports import lines

    n = -1 if fmt == "csv" else 0  # the CSV header is a line, not a record
    for line in lines(records, fmt):
        out.write(line)
        n += 1
    return max(n, 0)


def cmd_export(args: argparse.Namespace) -> int:
    from teledispatch.config import settings
    from teledispatch.db import jobs as jobs_db
    from teledispatch.db.engine import get_engine
    from teledispatch.db.migrate import ensure_schema
    from teledispatch.exports import rows

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
