"""The export row builder streams: pages are read as rows are taken, never ahead, and the
CSV header goes out before the first page is read. (Structure only: memory figures are the
benchmark's, bench/ ``export``.)"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from teledispatch import exports
from teledispatch.db import jobs as jobs_db
from teledispatch.db import messages as messages_db
from teledispatch.db.engine import get_engine
from teledispatch.db.tables import create_schema

N = 7
PAGE = 2


@pytest.fixture
def engine(db_url: str) -> Iterator[sa.Engine]:
    engine = get_engine(db_url)
    create_schema(engine)
    job = {"id": "j", "account": "nx", "channel": "nxcloud.sms", "total": N, "parts": 1}
    job |= {"content_hash": "h", "created_at": 0.0}
    rows: list[dict[str, Any]] = [
        {"id": f"j-{i}", "job_id": "j", "seq": i, "account": "nx", "channel": "nxcloud.sms"}
        | {"phone": f"+86139{i:08d}", "payload": json.dumps({"content": f"hi {i}", "ext": "7"})}
        | {"due_at": 0.0, "created_at": 0.0, "updated_at": 0.0}
        | {"encoding": "ucs2", "segments": 2}
        for i in range(N)
    ]
    with engine.begin() as conn:
        jobs_db.insert_jobs(conn, [job])
        messages_db.insert_messages(conn, rows)
    yield engine
    engine.dispose()


@pytest.fixture
def pages(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The size of every page the exporter read, in order."""
    read: list[int] = []
    real = messages_db.job_messages_page

    def recording(*args: Any, **kwargs: Any) -> Any:
        page = real(*args, **kwargs)
        read.append(len(page))
        return page

    monkeypatch.setattr(messages_db, "job_messages_page", recording)
    return read


def test_rows_are_yielded_page_by_page_never_read_ahead(
    engine: sa.Engine, pages: list[int]
) -> None:
    records = exports.rows(engine, "j", page_size=PAGE)
    assert pages == []  # nothing is read before the first row is asked for
    taken = 0
    for record in records:
        taken += 1
        # Row k comes from page k // PAGE: the pages read are exactly those it needed, so
        # at most one page of rows is held at a time, and the first rows are out before
        # the last page is read.
        assert len(pages) == (taken - 1) // PAGE + 1, (taken, pages)
        assert all(size <= PAGE for size in pages)
        if taken == 1:
            assert record["message_id"] == "j-0"
    assert taken == N and pages == [2, 2, 2, 1]


def test_the_csv_header_goes_out_before_any_page_is_read(
    engine: sa.Engine, pages: list[int]
) -> None:
    lines = exports.csv_lines(exports.rows(engine, "j", page_size=PAGE))
    header = next(lines)
    assert header.startswith("message_id,phone,status,")
    assert pages == []
    table = list(csv.DictReader(io.StringIO(header + "".join(lines))))
    assert len(table) == N
    row = table[3]
    assert (row["phone"], row["status"], row["encoding"], row["segments"]) == (
        "+8613900000003",
        "queued",
        "ucs2",
        "2",
    )
    assert json.loads(row["fields"]) == {"content": "hi 3", "ext": "7"}
