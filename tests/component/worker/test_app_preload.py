"""The worker's main process imports what pool processes need before it forks them."""

from __future__ import annotations

import json
import subprocess
import sys


def test_preload_imports_the_driver_and_migrations_without_connecting() -> None:
    # A fresh interpreter: this test process has long imported everything. The database
    # URL points at a port nothing listens on, so any connection attempt would fail.
    code = (
        "import sys, json; import teledispatch.worker.app as a; "
        "from teledispatch.worker import transport as t; "
        "names = ('psycopg', 'alembic', 'httpcore'); "
        "before = {m for m in names if m in sys.modules}; "
        "a._preload(); "
        "print(json.dumps([sorted(before), sorted(m for m in names if m in sys.modules), "
        "t.ssl_context.cache_info().currsize]))"
    )
    env = {"DATABASE_URL": "postgresql+psycopg://nobody@127.0.0.1:1/none", "PATH": ""}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    before, after, contexts = json.loads(out.stdout.strip().splitlines()[-1])
    assert before == []
    assert after == ["alembic", "httpcore", "psycopg"]
    assert contexts == 1  # the CA store is loaded once, before the fork
