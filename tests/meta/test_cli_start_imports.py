"""The CLI's everyday verbs start without the heavy modules the other roles need.

Each call of ``teledispatch status``/``lookup``/``send`` pays its imports before it does
anything, so those verbs must not import what only a worker, the API or the ORM uses. This is
the structural half of the start-time target (the figures are in ``python -m bench --only
cli``): each verb runs in a fresh interpreter on a scratch config and SQLite file, and the
modules it loaded are listed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

#: Never on these paths: the worker's Celery, the API's web stack, migrations, an ORM (the
#: tables are SQLAlchemy Core), the PostgreSQL dialect on a SQLite database (the tables add
#: its partial-index predicates only for PostgreSQL DDL), and the worker's claim code (the
#: ``db.messages`` package loads each module on first use).
HEAVY = (
    "celery", "kombu", "httpx", "fastapi", "starlette", "uvicorn", "prometheus_client",
    "alembic", "flower", "sqlmodel", "sqlalchemy.orm", "sqlalchemy.dialects.postgresql",
    "teledispatch.db.messages.claims",
)  # fmt: skip
#: Reading needs no Redis client either.
READ_ONLY_HEAVY = (*HEAVY, "redis")
#: ``status`` and ``lookup`` read through the database's own driver once the config file
#: passes the quick check (``teledispatch.quick_reads``), and so does an account's ``send
#: --dry-run`` (``producer.quick_dry_run``): neither SQLAlchemy nor the account models
#: (pydantic) are loaded for them.
QUICK_READ_HEAVY = (*READ_ONLY_HEAVY, "sqlalchemy", "pydantic", "teledispatch.config")

CONFIG = """
[accounts.demo]
channel = "nxcloud.sms"
base_url = "http://127.0.0.1:9"
access_key = "ak"
secret = "sk"
app_key = "app"
"""

SEND_3 = ["send", "--account", "demo", "--content", "hi", "--dry-run"]
SEND_3 += [a for p in ("+8613800138000", "+8613800138001", "+8613800138002") for a in ("--to", p)]

RUN = """
import json, sys
from teledispatch.cli.main import main
try:
    main(json.loads(sys.argv[1]))
except SystemExit:  # --version, --help
    pass
print("MODULES " + json.dumps(sorted(sys.modules)))
"""


def loaded_by(argv: list[str], tmp_path: Path) -> set[str]:
    config = tmp_path / "teledispatch.toml"
    config.write_text(CONFIG)
    env = {
        **os.environ,
        "TELEDISPATCH_CONFIG": str(config),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'td.db'}",
        "REDIS_URL": "redis://127.0.0.1:9/0",
    }
    # The second run is the one looked at: the first creates the database's schema (which
    # needs the migrations), as happens once per database.
    for _ in range(2):
        out = subprocess.run(
            [sys.executable, "-c", RUN, json.dumps(argv)],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    line = [x for x in out.stdout.splitlines() if x.startswith("MODULES ")]
    assert line, out.stdout + out.stderr
    return set(json.loads(line[-1].removeprefix("MODULES ")))


def _heavy(modules: set[str], names: tuple[str, ...]) -> list[str]:
    return sorted(n for n in names if n in modules)


@pytest.mark.parametrize(
    ("argv", "forbidden"),
    [
        # A job's status parses no phone number.
        (["status", "0" * 32], (*QUICK_READ_HEAVY, "phonenumbers")),
        (["status", "--json", "0" * 32], (*QUICK_READ_HEAVY, "phonenumbers")),
        (["lookup", "--phone", "+8613800138000"], QUICK_READ_HEAVY),
        (["lookup", "--provider-id", "P-1", "--json"], QUICK_READ_HEAVY),
        # A dry run wakes no dispatcher: no Redis client either; nor does it look anything up.
        (SEND_3, (*QUICK_READ_HEAVY, "teledispatch.producer.lookup")),
        ([*SEND_3, "--json", "--not-before", "2030-01-01T00:00Z"], QUICK_READ_HEAVY),
    ],
)
def test_everyday_verbs_import_nothing_heavy(
    argv: list[str], forbidden: tuple[str, ...], tmp_path: Path
) -> None:
    assert _heavy(loaded_by(argv, tmp_path), forbidden) == []


def test_help_imports_no_database_layer(tmp_path: Path) -> None:
    modules = loaded_by(["--version"], tmp_path)
    assert _heavy(modules, (*READ_ONLY_HEAVY, "sqlalchemy", "phonenumbers", "pydantic")) == []


def test_a_csv_dry_run_reads_without_sqlalchemy_or_pydantic(tmp_path: Path) -> None:
    rows = tmp_path / "rows.csv"
    rows.write_text("phone,content\n+8613800138000,hi\n+8613800138001,hello\n")
    argv = ["send", "--account", "demo", "--csv", str(rows), "--dry-run"]
    assert _heavy(loaded_by(argv, tmp_path), QUICK_READ_HEAVY) == []


def test_the_producer_package_loads_its_exports_when_asked(tmp_path: Path) -> None:
    # ``lookup`` (function and module) among them: importing the package alone loads none.
    code = (
        "import sys, teledispatch.producer as p\n"
        "print('sqlalchemy' in sys.modules, 'teledispatch.producer.lookup' in sys.modules)\n"
        "from teledispatch.producer import lookup\n"
        "import teledispatch.producer.lookup\n"
        "print(callable(lookup), p.lookup is lookup, p.lookup.__module__)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert out.stdout.split() == ["False", "False", "True", "True", "teledispatch.producer.lookup"]
