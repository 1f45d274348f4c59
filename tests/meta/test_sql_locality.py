"""SQL on a table lives in one place: ``jobs`` in the teledispatch/db/jobs/ package, ``messages``
and ``batches`` in the teledispatch/db/messages/ package (each package: SQLAlchemy statements,
and ``plain.py``, the SQL text of the read path without SQLAlchemy). Everywhere else calls their
named functions.

Checked from the source: outside ``teledispatch/db/``, no module may import a table (the
``*_table`` objects or the ``Job``/``Message``/``Batch`` models, which is what every statement
builder starts from), nor hold SQL text that names one of the tables.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
#: The real folders (teledispatch/producer, worker, simulator are links to the last three).
SOURCES = ("teledispatch", "producer", "worker", "simulator")
DB = ROOT / "teledispatch" / "db"
TABLE_NAMES = {"jobs_table", "messages_table", "batches_table", "Job", "Message", "Batch"}
SQL_ON_TABLE = re.compile(
    r"\b(?:UPDATE|INSERT INTO|DELETE FROM|FROM|JOIN)\s+(?:jobs|messages|batches)\b"
)

#: TEMPORARY (ISSUE-12): the receipt writes and polls and the API's queries are being moved
#: into teledispatch/db/messages/ by other changes. Delete each entry when its move lands;
#: nothing may be added here.
#: Modules whose SQL is still to move into db/ (empty: keep it so, or say why an entry is here).
NOT_YET_MOVED: set[str] = set()


def _modules() -> Iterator[Path]:
    for top in SOURCES:
        for path in sorted((ROOT / top).rglob("*.py")):
            # rglob does not enter the links, so each file is seen once, under its real folder.
            if DB in path.parents:
                continue
            yield path


def _docstrings(tree: ast.Module) -> set[int]:
    ids: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                ids.add(id(body[0].value))
    return ids


def _offences(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    docs = _docstrings(tree)
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("teledispatch.db"):
            names = {a.name for a in node.names} & TABLE_NAMES
            if names:
                found.append(f"line {node.lineno}: imports {', '.join(sorted(names))}")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "teledispatch.db.tables":
                    found.append(f"line {node.lineno}: imports teledispatch.db.tables")
        elif (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and id(node) not in docs
            and SQL_ON_TABLE.search(node.value)
        ):
            found.append(f"line {node.lineno}: SQL text on a table")
    return found


def _allowed(relative: str) -> bool:
    return any(
        relative == entry or (entry.endswith("/") and relative.startswith(entry))
        for entry in NOT_YET_MOVED
    )


def test_sql_on_a_table_lives_in_its_db_module() -> None:
    offenders = {}
    for path in _modules():
        relative = path.relative_to(ROOT).as_posix()
        if _allowed(relative):
            continue
        found = _offences(path)
        if found:
            offenders[relative] = found
    assert not offenders, (
        "statements on jobs/messages/batches belong in the teledispatch/db/jobs/ or "
        f"the teledispatch/db/messages/ package; found: {offenders}"
    )


def test_the_check_sees_what_it_looks_for() -> None:
    # The scan must cover the producer and the worker (through their real folders) ...
    scanned = {p.relative_to(ROOT).as_posix() for p in _modules()}
    assert {"producer/lookup.py", "worker/reconcile.py", "teledispatch/cli/ops.py"} <= scanned
    # ... and find a table import and SQL text when they are there.
    assert _offences(DB / "messages" / "updates.py")
    assert _offences(DB / "jobs" / "statements.py")
    assert _offences(DB / "jobs" / "plain.py")


def test_the_allow_list_holds_only_modules_that_still_need_it() -> None:
    # An entry whose module no longer has SQL on a table has moved: delete the entry.
    for entry in NOT_YET_MOVED:
        paths = sorted((ROOT / entry).rglob("*.py")) if entry.endswith("/") else [ROOT / entry]
        assert any(p.exists() and _offences(p) for p in paths), f"{entry} is clean: unlist it"
