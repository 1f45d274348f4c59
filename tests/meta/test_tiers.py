"""The unit tier stays pure: no sockets, no subprocesses, no sleeps, no real services.

A unit test that quietly needs a server fails on a machine without one and slows every run; the
folder is the promise (see the README's "Tests"). Component tests may use real services, never
Celery workers; those belong to integration.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
#: Imports that mean a socket, a process or a server.
IMPURE_MODULES = {"subprocess", "socket", "multiprocessing", "http.server", "socketserver"}
#: Calls and fixtures that mean waiting on the wall clock or starting a real service.
IMPURE_NAMES = {"sleep", "from_url", "free_port", "start_redis_server", "ensure_redis"}
IMPURE_FIXTURES = {"redis_service", "make_stack", "database_url"}


def _problems(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [f"imports {a.name}" for a in node.names if a.name in IMPURE_MODULES]
        elif isinstance(node, ast.ImportFrom) and node.module in IMPURE_MODULES:
            found.append(f"imports from {node.module}")
        elif isinstance(node, ast.Attribute) and node.attr in IMPURE_NAMES:
            found.append(f"line {node.lineno}: .{node.attr}")
        elif isinstance(node, ast.Name) and node.id in IMPURE_NAMES:
            found.append(f"line {node.lineno}: {node.id}")
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            args = {a.arg for a in node.args.args} & IMPURE_FIXTURES
            found += [f"line {node.lineno}: fixture {a}" for a in sorted(args)]
    return found


def test_unit_tests_use_no_sockets_processes_sleeps_or_services() -> None:
    offenders = {
        str(p.relative_to(ROOT)): found
        for p in sorted((ROOT / "tests" / "unit").rglob("*.py"))
        if (found := _problems(p))
    }
    assert offenders == {}


def test_component_tests_start_no_celery_worker() -> None:
    """``Stack.worker()`` starts Celery workers: a test that needs one is an integration test."""
    offenders = [
        str(p.relative_to(ROOT))
        for p in sorted((ROOT / "tests" / "component").rglob("*.py"))
        if "stack.worker(" in p.read_text(encoding="utf-8")
    ]
    assert offenders == []


def test_the_guard_sees_a_sleep_and_a_subprocess(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("import subprocess\nimport time\ntime.sleep(1)\n", encoding="utf-8")
    assert _problems(sample) == ["imports subprocess", "line 3: .sleep"]
