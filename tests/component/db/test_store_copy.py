"""A new job's rows go by COPY on PostgreSQL and by INSERT elsewhere (and on the re-store path,
which must skip rows already present): every path stores the same rows."""

from __future__ import annotations

import time
from typing import Any

import sqlalchemy as sa

from teledispatch.channels.registry import rules_for
from teledispatch.db.engine import get_engine
from teledispatch.db.messages import COPY_MIN_ROWS
from teledispatch.db.migrate import ensure_schema
from teledispatch.db.tables import jobs_table, messages_table
from teledispatch.producer.submit import store_part

COLUMNS = ("id", "job_id", "seq", "account", "channel", "phone", "group_key", "payload", "status")


def _job(engine: sa.Engine, job_id: str) -> None:
    with engine.begin() as conn:
        conn.execute(
            jobs_table.insert().values(
                id=job_id,
                account="nx",
                channel="nxcloud.sms",
                total=COPY_MIN_ROWS * 2,
                content_hash="h",
                created_at=time.time(),
            )
        )


def _rows(engine: sa.Engine, job_id: str) -> list[tuple[Any, ...]]:
    cols = [messages_table.c[name] for name in COLUMNS]
    with engine.connect() as conn:
        query = sa.select(*cols).where(messages_table.c.job_id == job_id).order_by("seq")
        return [tuple(r) for r in conn.execute(query)]


def test_fresh_and_restored_parts_store_the_same_rows(database_url: str) -> None:
    ensure_schema(database_url)
    engine = get_engine(database_url)
    rules = rules_for("nxcloud.sms")
    # Text that needs escaping in COPY's format: tabs, newlines, backslashes, quotes, non-ASCII.
    part = [
        [i, {"phone": f"+86139{i:08d}", "content": f'code\t{i}\n\\ "q" 验证码 {i}'}]
        for i in range(COPY_MIN_ROWS * 2)
    ]
    for job_id, fresh in (("copied", True), ("inserted", False)):
        _job(engine, job_id)
        assert store_part(engine, job_id, part, rules, None, fresh=fresh) == len(part)
    # Storing a part again (a producer that died mid-job, re-enqueued by key) adds nothing.
    store_part(engine, "copied", part, rules, None, fresh=False)
    copied, inserted = _rows(engine, "copied"), _rows(engine, "inserted")
    assert len(copied) == len(part)
    assert [r[2:] for r in copied] == [r[2:] for r in inserted]
    assert copied[3][7] == inserted[3][7] and "验证码" in copied[3][7]
