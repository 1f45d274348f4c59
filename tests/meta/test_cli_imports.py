"""What a CLI start loads: the parser needs none of the heavy libraries, and ``status`` or
``lookup`` none of Celery, Redis or Alembic (each is a tenth of a second or more per call).

Each check runs in a fresh interpreter: this test process has long loaded everything.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("celery", "kombu", "alembic", "sqlalchemy", "sqlmodel", "phonenumbers", "fastapi", "redis")


def loaded_after(code: str) -> set[str]:
    probe = f"import sys, json\n{code}\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    return {m.split(".")[0] for m in json.loads(out.stdout.splitlines()[-1])}


def test_building_the_parser_loads_nothing_heavy() -> None:
    loaded = loaded_after("from teledispatch.cli.main import build_parser; build_parser()")
    assert loaded.isdisjoint(HEAVY), sorted(loaded & set(HEAVY))


def test_status_at_head_loads_no_celery_redis_or_alembic(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'td.db'}"
    loaded_after(f"from teledispatch.db.migrate import ensure_schema; ensure_schema({url!r})")
    loaded = loaded_after(
        "from teledispatch.producer.lookup import job_status, JobNotFound\n"
        "from teledispatch.config import Settings\n"
        "try:\n"
        f"    job_status('nojob', cfg=Settings(database_url={url!r}))\n"
        "except JobNotFound:\n"
        "    pass"
    )
    assert loaded.isdisjoint({"celery", "kombu", "redis", "alembic"}), loaded
