"""A claim never takes more than its limit, on SQLite and PostgreSQL (regression: under
``IN (SELECT … LIMIT n FOR UPDATE SKIP LOCKED)`` PostgreSQL may re-run the subquery and
update far more than n rows)."""

from __future__ import annotations

import json
import time
from typing import Any

import sqlalchemy as sa

from teledispatch.channels.registry import rules_for
from teledispatch.db import messages as repo
from teledispatch.db.engine import get_engine
from teledispatch.db.migrate import ensure_schema
from teledispatch.db.tables import batches_table, jobs_table, messages_table
from teledispatch.producer.submit import store_part


def test_claims_are_bounded_and_disjoint(database_url: str) -> None:
    ensure_schema(database_url)
    engine = get_engine(database_url)
    now = time.time()
    with engine.begin() as conn:
        conn.execute(
            jobs_table.insert().values(
                id="j",
                account="nx",
                channel="nxcloud.sms",
                total=3000,
                content_hash="h",
                created_at=now,
            )
        )
    part = [[i, {"phone": f"+86139{i:08d}", "content": "x"}] for i in range(3000)]
    store_part(engine, "j", part, rules_for("nxcloud.sms"), None)
    seen: set[str] = set()
    for limit in (50, 200, 1, 999):
        claim = repo.claim(engine, "nx", limit, lease_s=60, now=time.time() + 1)
        ids = {c.id for c in claim.messages}
        assert len(claim.messages) == limit == len(ids)
        assert not ids & seen
        seen |= ids


def test_claim_returns_each_rows_fields_and_one_lease_per_group(database_url: str) -> None:
    """The claimed rows carry their own id, phone, group key, payload and attempt count (the
    claim unpacks RETURNING by position), due ``deferred`` rows come first, and each group key
    gets one ``batches`` row holding the lease."""
    ensure_schema(database_url)
    engine = get_engine(database_url)
    with engine.begin() as conn:
        conn.execute(
            jobs_table.insert().values(
                id="j", account="nx", channel="nxcloud.sms", total=6, content_hash="h", created_at=0
            )
        )
    part = [[i, {"phone": f"+86139{i:08d}", "content": f"é'\\{i}"}] for i in range(6)]
    store_part(engine, "j", part, rules_for("nxcloud.sms"), None)
    with engine.begin() as conn:
        conn.execute(sa.update(messages_table).values(due_at=0))
        conn.execute(
            sa.update(messages_table)
            .where(messages_table.c.id.in_(["j-4", "j-5"]))
            .values(status="deferred", group_key="g2", attempts=3, due_at=1)
        )
    claim = repo.claim(engine, "nx", 5, lease_s=60, now=10)
    got = [(c.id, c.phone, c.group_key, json.loads(c.payload), c.attempts) for c in claim.messages]

    def row(i: int, group_key: str, attempts: int) -> tuple[Any, ...]:
        phone = f"+86139{i:08d}"
        return (f"j-{i}", phone, group_key, {"phone": phone, "content": f"é'\\{i}"}, attempts)

    assert sorted(got[:2]) == [row(4, "g2", 4), row(5, "g2", 4)]
    assert sorted(got[2:]) == [row(i, "", 1) for i in range(3)]
    with engine.connect() as conn:
        leases = conn.execute(
            sa.select(batches_table.c.group_key, batches_table.c.lease_until).where(
                batches_table.c.claim_token == claim.token
            )
        ).all()
    assert sorted(leases) == [("", 70.0), ("g2", 70.0)]
