"""A claim reads the backlog through its indexes whatever PostgreSQL's statistics say: no
sequential scan of ``messages``, no sort of a job's rows, and no read statement that walks
more than a claim's worth of rows.

Regression: before the table's first ANALYZE (a campaign just enqueued) the planner took a
job for small, read all its rows through ``(job_id, status)`` and sorted them on each claim,
and the lanes' "any held rows?" check scanned the whole table; claims of a saturated account
then ran slower than its rate until autovacuum analyzed the table.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import sqlalchemy as sa

from teledispatch.db import messages as repo
from teledispatch.db.messages import claim_sql
from tests.support import due_job, plan_nodes

#: Enough rows that a sequential scan or a sort of them is the planner's pick without
#: statistics (it assumes a small table otherwise).
ROWS = 30_000
#: What one node of a read statement may touch: a claim's rows, not the backlog's.
MAX_READ = 1_000


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_claim_scans_no_table_and_sorts_no_job(database_url: str) -> None:
    engine = due_job(database_url, ROWS)
    with engine.begin() as conn:
        # No ANALYZE may happen during the test: the plans must hold without statistics.
        conn.exec_driver_sql("ALTER TABLE messages SET (autovacuum_enabled = false)")
        conn.exec_driver_sql("ALTER TABLE jobs SET (autovacuum_enabled = false)")
    plans: list[tuple[str, dict[str, Any]]] = []

    def explain(
        _conn: Any, cursor: Any, statement: str, parameters: Any, _ctx: Any, _many: bool
    ) -> None:
        verb = statement.lstrip().split(None, 1)[0].upper()
        if "messages" in statement and verb in ("SELECT", "WITH", "UPDATE"):
            # Reads are run to count what they touch; the UPDATE is only planned.
            how = "ANALYZE, " if verb != "UPDATE" else ""
            cursor.execute(f"EXPLAIN ({how}FORMAT JSON) " + statement, parameters)
            (doc,) = cursor.fetchone()
            doc = json.loads(doc) if isinstance(doc, str) else doc
            plans.append((statement, doc[0]["Plan"]))

    # The lanes query goes through psycopg's pipeline, past SQLAlchemy's events: explained
    # here as the claim runs it, after its plan setting in the same transaction.
    with engine.begin() as conn:
        conn.exec_driver_sql(claim_sql.NO_SORT)
        params = {"account": "nx", "now": 1.0, "max_jobs": claim_sql.MAX_JOBS_PER_LANE}
        with conn.connection.driver_connection.cursor() as cursor:  # type: ignore[union-attr]
            explain(None, cursor, claim_sql.LANES_PG, params, None, False)
    sa.event.listen(engine, "before_cursor_execute", explain)
    try:
        claim = repo.claim(engine, "nx", 200, lease_s=60, now=1.0)
    finally:
        sa.event.remove(engine, "before_cursor_execute", explain)
    assert len(claim.messages) == 200
    assert len(plans) >= 2  # the lanes, then the take
    for statement, plan in plans:
        for node in plan_nodes(plan):
            where = f"{node['Node Type']} in {statement[:80]!r}"
            assert not (
                node["Node Type"] == "Seq Scan" and node.get("Relation Name") == "messages"
            ), where
            assert node["Node Type"] not in ("Sort", "Incremental Sort"), where
            touched = node.get("Actual Rows", 0) * node.get("Actual Loops", 1)
            touched += node.get("Rows Removed by Filter", 0)
            assert touched <= MAX_READ, f"{where}: {touched} rows"
