"""Marking a webhook batch delivered or failed reads the batch's own rows, however many
events are pending and whatever PostgreSQL's statistics say.

Regression: with ``seq = ANY(…) AND state = 'pending'`` and no statistics yet (an outbox
filled faster than autovacuum analyses it), the planner read every pending event of every
endpoint for each batch of 200: 43 ms a batch behind 20,000 pending, a drain that slowed as
its backlog grew.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import sqlalchemy as sa

from teledispatch.db import events as events_db
from teledispatch.db.engine import get_engine
from teledispatch.db.tables import create_schema
from tests.support import plan_nodes

#: Pending events behind the batch, split over two endpoints.
BACKLOG = 6_000
BATCH = 200
#: What one node of the statement may touch: a batch's rows, not the backlog's.
MAX_READ = 2 * BATCH
URLS = ("https://a.example/hook", "https://b.example/hook")


def _fill(engine: sa.Engine) -> None:
    """``BACKLOG`` pending events, the two endpoints' interleaved job by job."""
    with engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE events SET (autovacuum_enabled = false)")
        for k in range(BACKLOG // 100):
            job = f"j{k}"
            targets = {job: ("nx", URLS[k % 2])}
            rows = [
                (f"{job}-{i}", job, "+8613900000000", "sent", "p", None, None) for i in range(100)
            ]
            events_db.insert_events(conn, targets, rows, 1.0)


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
@pytest.mark.parametrize("outcome", ["delivered", "failed"])
def test_marking_a_batch_reads_the_batch_not_the_backlog(database_url: str, outcome: str) -> None:
    engine = get_engine(database_url)
    create_schema(engine)
    _fill(engine)
    endpoint = events_db.endpoint_key(URLS[1])
    seqs = [int(r.seq) for r in events_db.head_batch(engine, endpoint, BATCH)]
    plans: list[dict[str, Any]] = []

    def explain(
        _conn: Any, cursor: Any, statement: str, parameters: Any, _ctx: Any, _many: bool
    ) -> None:
        if statement.lstrip().upper().startswith("UPDATE EVENTS"):
            # Run inside a savepoint and undone: the statement itself runs next.
            cursor.execute("SAVEPOINT explained")
            cursor.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + statement, parameters)
            (doc,) = cursor.fetchone()
            cursor.execute("ROLLBACK TO SAVEPOINT explained")
            plans.append(json.loads(doc)[0]["Plan"] if isinstance(doc, str) else doc[0]["Plan"])

    sa.event.listen(engine, "before_cursor_execute", explain)
    try:
        if outcome == "delivered":
            events_db.mark_delivered(engine, endpoint, seqs, 2.0)
        else:
            events_db.mark_failed(engine, endpoint, seqs, 2.0, 60.0, "HTTP 503", dead=False)
    finally:
        sa.event.remove(engine, "before_cursor_execute", explain)
    assert len(plans) == 1
    for node in plan_nodes(plans[0]):
        touched = node.get("Actual Rows", 0) * node.get("Actual Loops", 1)
        touched += node.get("Rows Removed by Filter", 0)
        assert touched <= MAX_READ, f"{node['Node Type']}: {touched} rows"
    with engine.connect() as conn:
        marked = conn.execute(
            sa.select(events_db.e.seq).where(events_db.e.attempts == 1).order_by(events_db.e.seq)
        ).scalars()
        assert list(marked) == seqs
    assert len(events_db.head_batch(engine, endpoint, BACKLOG)) == (
        BACKLOG // 2 - (BATCH if outcome == "delivered" else 0)
    )
