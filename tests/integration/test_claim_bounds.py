"""A claim never takes more than its limit, on SQLite and PostgreSQL (regression: under
``IN (SELECT … LIMIT n FOR UPDATE SKIP LOCKED)`` PostgreSQL may re-run the subquery and
update far more than n rows)."""

from __future__ import annotations

import time

import pytest

from producer.channels import rules_for
from producer.schema import ensure_schema
from producer.store import get_engine, jobs_table
from producer.submit import store_part
from worker import repo

pytestmark = pytest.mark.integration


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
