"""On SQLite a batch's outcomes are written row by row through the primary key, the JSON
array read once.

Regression: SQLite took the claim token's index for the outer loop and scanned the whole
array for each of the claim's rows, so a write cost the square of its size (2,500 outcomes
took 6.8 s, 200 took 40 ms; a retention test spent most of its time there).
"""

from __future__ import annotations

from teledispatch.db import messages as messages_db
from teledispatch.db.messages import Update, updates
from tests.support import due_job

ROWS = 300


def test_the_outcome_write_reads_the_array_once_and_finds_rows_by_id(db_url: str) -> None:
    engine = due_job(db_url, ROWS)
    claim = messages_db.claim(engine, "nx", ROWS, 30.0, 1.0)
    with engine.connect() as conn:
        compiled = updates._APPLY_SQLITE.compile(dialect=conn.dialect)
        params = {"rows": "[]", "now": 1.0, "token": claim.token}
        args = tuple(params[name] for name in compiled.positiontup or ())
        explained = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}", args)
        plan = [str(r[3]) for r in explained]
    assert plan[0].startswith("SCAN json_each"), plan
    assert any(line.startswith("SEARCH messages") and "(id=?)" in line for line in plan), plan
    written = messages_db.apply(
        engine, claim.token, [Update.failed(m.id) for m in claim.messages], 2.0
    )
    assert written == ROWS
    with engine.connect() as conn:
        assert messages_db.status_counts(conn, "j") == {"failed": ROWS}
    engine.dispose()
