"""The unit tier stays pure: no sockets, no subprocesses, no sleeps, no real services.

A unit test that quietly needs a server fails on a machine without one and slows every run; the
folder is the promise (see the README's "Tests"). Component tests may use real services, never
Celery workers; those belong to integration.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
#: Imports that mean a process or a server (``socket`` alone may be for its constants).
IMPURE_MODULES = {"subprocess", "multiprocessing", "http.server", "socketserver"}
#: Calls and fixtures that mean a real socket, waiting on the wall clock or a real service.
IMPURE_NAMES = {
    "sleep",
    "from_url",
    "free_port",
    "start_redis_server",
    "ensure_redis",
    "create_connection",
    "create_server",
    "urlopen",
}
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
        elif (
            isinstance(node, ast.Attribute)
            and node.attr == "socket"
            and isinstance(node.value, ast.Name)
            and node.value.id == "socket"
        ):
            found.append(f"line {node.lineno}: socket.socket")
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
    sample.write_text(
        "import socket\nimport subprocess\nimport time\ntime.sleep(1)\ns = socket.socket()\n",
        encoding="utf-8",
    )
    assert _problems(sample) == ["imports subprocess", "line 4: .sleep", "line 5: socket.socket"]
