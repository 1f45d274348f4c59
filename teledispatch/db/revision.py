"""The newest migration's revision, read from the version files without Alembic, and
whether a database is at it: the check every process makes before its first statement.

Apart from ``migrate`` so that the SQLAlchemy-free read path (``db/plain.py``) can make the
same check; the migrations themselves stay ``migrate``'s.
"""

from __future__ import annotations

import re
from pathlib import Path

#: Where the revisions are (``alembic.ini`` names the same folder for hand use).
SCRIPT_LOCATION = str(Path(__file__).resolve().parent / "migrations")
#: The revision a database holds (Alembic's own table, one row).
STORED_REVISION_SQL = "SELECT version_num FROM alembic_version"

_REVISION_LINE = re.compile(r'^(down_revision|revision)\b[^=]*=\s*(?:"([^"]*)"|None)', re.M)


def quick_head() -> str | None:
    """The head revision read from the version files' ``revision``/``down_revision`` lines,
    without Alembic (a quarter of a second of imports for every CLI call); None when the
    files do not make one clear head, and Alembic decides."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in Path(SCRIPT_LOCATION, "versions").glob("*.py"):
        for key, value in _REVISION_LINE.findall(path.read_text(encoding="utf-8")):
            if value:
                (revisions if key == "revision" else parents).add(value)
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 else None


def is_head(stored: list[str]) -> bool:
    """Whether the revisions a database holds are exactly the head (never when unclear)."""
    head = quick_head()
    return head is not None and stored == [head]
