"""The schema in force is the one the migrations build (``teledispatch db upgrade``).

Each process checks once per database that it is at the newest revision and, if not, runs
the migrations itself, so a fresh SQLite file or a new PostgreSQL database just works. Several
processes may race to do it on first start: the losers find the revision at head afterwards.
Deployments still run ``db upgrade`` once per release (the migrate job), before any worker.
"""

from __future__ import annotations

import threading

_ready: set[str] = set()
_lock = threading.Lock()


def ensure_schema(url: str) -> None:
    if url in _ready:
        return
    # Imported here: db.migrations imports db.tables, which must stay light.
    from teledispatch.db.migrations import current_revision, head_revision, upgrade

    with _lock:
        if url in _ready:
            return
        head = head_revision()
        if current_revision(url) != head:
            try:
                upgrade(url)
            except Exception:
                if current_revision(url) != head:
                    raise
        _ready.add(url)
