"""A bulk job stored from the spool, on SQLite (INSERT) and PostgreSQL (COPY): rows kept in
memory and rows read back from the spool's file store the same messages, byte for byte, and
the job's content hash is the one earlier releases computed."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
import sqlalchemy as sa

from teledispatch.db.engine import get_engine
from teledispatch.db.messages import COPY_MIN_ROWS
from teledispatch.db.tables import jobs_table, messages_table
from teledispatch.producer import _spool, submit
from teledispatch.producer.submit import enqueue_stream
from tests.support import make_settings

N = COPY_MIN_ROWS * 5


def _recipient(i: int) -> dict[str, Any]:
    # Text that needs escaping in JSON and in COPY's format, on some rows only.
    content = f'code\t{i}\n\\ "q" 验证码 \u2028 {i}' if i % 3 == 0 else None
    return {"phone": f"86 139-{i:08d}"} | ({"content": content} if content else {})


def _expected(i: int) -> dict[str, Any]:
    r = _recipient(i)
    return {"phone": f"+86139{i:08d}", "content": r.get("content", "default text")}


def _legacy_hash() -> str:
    h = hashlib.sha256()
    for i in range(N):
        line = json.dumps([i, _expected(i)], ensure_ascii=False, separators=(",", ":"))
        h.update(line.encode())
    header = {"account": "nx", "not_before": None, "allow_duplicates": False}
    h.update(json.dumps(header, sort_keys=True).encode())
    return h.hexdigest()


@pytest.mark.parametrize("memory_rows", [0, COPY_MIN_ROWS * 2 + 1, N])
def test_bulk_job_rows_and_hash_whatever_the_spool_kept_in_memory(
    database_url: str, monkeypatch: pytest.MonkeyPatch, memory_rows: int
) -> None:
    monkeypatch.setattr(submit, "wake", lambda *a: None)
    monkeypatch.setattr(_spool, "SPOOL_MEMORY_ROWS", memory_rows)
    monkeypatch.setattr(submit, "PART_SIZE", COPY_MIN_ROWS * 2)  # parts of 128, 128, 64
    cfg = make_settings(database_url)
    job = enqueue_stream(
        "nx", (_recipient(i) for i in range(N)), defaults={"content": "default text"}, cfg=cfg
    )
    assert (job.total, job.created) == (N, True)
    engine = get_engine(database_url)
    m = messages_table
    with engine.connect() as conn:
        content_hash = conn.execute(
            sa.select(jobs_table.c.content_hash).where(jobs_table.c.id == job.job_id)
        ).scalar_one()
        rows = conn.execute(
            sa.select(m.c.id, m.c.seq, m.c.phone, m.c.group_key, m.c.payload, m.c.status)
            .where(m.c.job_id == job.job_id)
            .order_by(m.c.seq)
        ).all()
    assert content_hash == _legacy_hash()
    expected = [
        (
            f"{job.job_id}-{i}",
            i,
            f"+86139{i:08d}",
            "",
            json.dumps(_expected(i), ensure_ascii=False, separators=(",", ":")),
            "queued",
        )
        for i in range(N)
    ]
    assert [tuple(r) for r in rows] == expected
