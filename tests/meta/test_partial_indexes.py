"""The partial indexes keep their PostgreSQL predicates, though the tables add them late.

``postgresql_where=`` is not written in ``sa.Index(...)`` (it would import the PostgreSQL
dialect in every process, a CLI call on SQLite included): ``db/tables.py`` keeps each
predicate and adds them before PostgreSQL DDL. Each check runs in a fresh interpreter, as
this test process may have added them already.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

CREATE_ALL = """
import json, sys
import sqlalchemy as sa
from teledispatch.db import tables
statements = []
engine = sa.create_mock_engine(
    sys.argv[1], lambda sql, *a, **k: statements.append(str(sql.compile(dialect=engine.dialect)))
)
tables.metadata.create_all(engine, checkfirst=False)
print(json.dumps({
    "indexes": [s.strip() for s in statements if "INDEX" in s],
    "partial": sorted(tables._POSTGRESQL_WHERE),
}))
"""


def _create_all(url: str) -> dict[str, list[str]]:
    out = subprocess.run(
        [sys.executable, "-c", CREATE_ALL, url],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    found: dict[str, list[str]] = json.loads(out.stdout.splitlines()[-1])
    return found


def _where_of(indexes: list[str]) -> dict[str, bool]:
    return {s.split(" ON ")[0].split()[-1]: " WHERE " in s for s in indexes}


def test_postgresql_ddl_has_every_partial_index_predicate() -> None:
    found = _create_all("postgresql+psycopg://")
    where = _where_of(found["indexes"])
    assert found["partial"] and set(found["partial"]) <= set(where)
    assert {name for name, partial in where.items() if partial} == set(found["partial"])


def test_sqlite_ddl_is_partial_except_for_the_claim_index() -> None:
    found = _create_all("sqlite://")
    where = _where_of(found["indexes"])
    assert {name for name, partial in where.items() if partial} == set(found["partial"]) - {
        "ix_messages_claim"
    }
