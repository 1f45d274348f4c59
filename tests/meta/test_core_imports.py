"""An app that installs only the core dependencies can import the producer and run the CLI's
send/status/lookup: none of them may import a module that only an extra provides.

Each check runs in a fresh interpreter (this test process has imported everything long ago)
where the extras' modules cannot be imported at all, as after ``pip install teledispatch``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from teledispatch.cli.extras import EXTRA_MODULES

FORBIDDEN = sorted({m for mods in EXTRA_MODULES.values() for m in mods} | {"starlette"})

# Runs before the code under test: a finder that refuses the extras' modules, and a report of
# which of them got into sys.modules anyway (through a path that swallowed the ImportError).
PRELUDE = """
import importlib.abc, json, sys
FORBIDDEN = set(json.loads(sys.argv[1]))
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in FORBIDDEN:
            raise ImportError(f"{name} is not installed (core dependencies only)")
        return None
sys.meta_path.insert(0, Block())
def report():
    print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in FORBIDDEN)))
"""


def run_core_only(code: str, env: dict[str, str] | None = None) -> tuple[int, str, list[str]]:
    out = subprocess.run(
        [sys.executable, "-c", PRELUDE + code, json.dumps(FORBIDDEN)],
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
    )
    lines = out.stdout.strip().splitlines()
    loaded: list[str] = json.loads(lines[-1]) if lines else ["<no report>"]
    return out.returncode, out.stdout + out.stderr, loaded


def test_forbidden_covers_every_extra() -> None:
    assert {"fastapi", "uvicorn", "flower", "fakeredis", "lupa", "httpx", "prometheus_client"} <= (
        set(FORBIDDEN)
    )


def test_import_producer_needs_only_core() -> None:
    code, output, loaded = run_core_only(
        "import teledispatch, teledispatch.producer as p\n"
        "assert p.enqueue and p.Producer and teledispatch.Error\n"
        "report()\n"
    )
    assert code == 0, output
    assert loaded == []


@pytest.mark.parametrize(
    "argv", [["--help"], ["send", "--help"], ["status", "--help"], ["lookup", "--help"]]
)
def test_cli_help_needs_only_core(argv: list[str]) -> None:
    code, output, loaded = run_core_only(
        "from teledispatch.cli.main import main\n"
        f"try:\n    main({argv!r})\nexcept SystemExit as e:\n    assert e.code == 0, e.code\n"
        "report()\n"
    )
    assert code == 0, output
    assert "usage: teledispatch" in output
    assert loaded == []


def test_send_and_lookup_run_with_only_core(tmp_path: Path) -> None:
    config = tmp_path / "teledispatch.toml"
    config.write_text(
        '[accounts.nx]\nchannel = "nxcloud.sms"\nbase_url = "http://x"\n'
        'access_key = "a"\nsecret = "s"\n'
    )
    env = {
        "TELEDISPATCH_CONFIG": str(config),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'core.db'}",
    }
    code, output, loaded = run_core_only(
        "from teledispatch.cli.main import main\n"
        "assert main(['send', '--account', 'nx', '--to', '+8613800138000',"
        " '--content', 'hi', '--dry-run', '--json']) == 0\n"
        "assert main(['lookup', '--phone', '+8613800138000', '--json']) == 0\n"
        "report()\n",
        env,
    )
    assert code == 0, output
    assert '{"valid": true, "total": 1, ' in output
    assert loaded == []


def test_a_server_verb_without_its_extra_says_which_to_install() -> None:
    code, output, _ = run_core_only(
        "from teledispatch.cli.main import main\n"
        "assert main(['api']) == 3  # EXIT_MISSING_EXTRA\n"
        "report()\n"
    )
    assert code == 0, output
    assert "pip install 'teledispatch[server]'" in output
