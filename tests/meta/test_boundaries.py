"""Import boundaries between the packages, read from the source (no imports are executed).

- ``producer`` (what an app embeds) never loads worker code, the API, the CLI or the dev harness:
  an app that enqueues must not pull in Celery worker modules, FastAPI or provider adapters.
- ``worker`` never imports ``producer``: both sides share the kernel, not each other.
- The kernel (``teledispatch/*.py``, ``db/``, ``channels/``) imports no role, no entry point.
- Nothing imports the folders by their repository names (``import producer``): the import names
  are ``teledispatch.*`` so that an installed copy cannot collide with another package's module.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
KERNEL_DIRS = ("db", "channels")
ENTRY_POINTS = ("teledispatch.api", "teledispatch.cli", "teledispatch.dev")


def imports_of(path: Path) -> Iterator[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.lineno, node.module
            # `from teledispatch import worker` imports the package `teledispatch.worker`
            for alias in node.names:
                yield node.lineno, f"{node.module}.{alias.name}"


def sources(*folders: str) -> list[Path]:
    return sorted(p for folder in folders for p in (ROOT / folder).rglob("*.py"))


def kernel_sources() -> list[Path]:
    top = [p for p in (ROOT / "teledispatch").glob("*.py")]
    return sorted(top + sources(*(f"teledispatch/{d}" for d in KERNEL_DIRS)))


def violations(paths: list[Path], forbidden: tuple[str, ...]) -> list[str]:
    found = []
    for path in paths:
        for line, name in imports_of(path):
            if any(name == f or name.startswith(f + ".") for f in forbidden):
                found.append(f"{path.relative_to(ROOT)}:{line} imports {name}")
    return found


def test_producer_loads_no_worker_api_cli_or_harness() -> None:
    forbidden = ("teledispatch.worker", *ENTRY_POINTS, "fastapi", "flower", "uvicorn", "fakeredis")
    assert violations(sources("producer"), forbidden) == []


def test_worker_imports_no_producer() -> None:
    assert violations(sources("worker"), ("teledispatch.producer",)) == []


def test_kernel_imports_no_role_and_no_entry_point() -> None:
    forbidden = ("teledispatch.producer", "teledispatch.worker", *ENTRY_POINTS)
    assert violations(kernel_sources(), forbidden) == []


@pytest.mark.parametrize(
    "folder", ["teledispatch", "producer", "worker", "simulator", "tests", "bench"]
)
def test_nothing_imports_the_repository_folder_names(folder: str) -> None:
    assert violations(sources(folder), ("producer", "worker", "simulator")) == []


def test_the_role_folders_are_reached_through_teledispatch() -> None:
    """The links that give ``producer/`` & co. their ``teledispatch.*`` import names."""
    for role in ("producer", "worker", "simulator"):
        link = ROOT / "teledispatch" / role
        assert link.is_symlink(), f"teledispatch/{role} must link to ../{role}"
        assert link.resolve() == (ROOT / role).resolve()
