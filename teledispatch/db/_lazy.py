"""A table package's SQLAlchemy statements, loaded on first use (PEP 562).

``db/jobs``, ``db/attempts`` and ``db/optouts`` each keep their SQLAlchemy statements in a
``statements`` module and the SQL text of the read path without SQLAlchemy (``db/plain.py``)
in ``plain``; the package resolves any other name from ``statements`` when it is first asked
for, so that importing the package, or its ``plain``, loads no SQLAlchemy.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, MutableMapping
from typing import Any


def statements_loader(package: str, namespace: MutableMapping[str, Any]) -> Callable[[str], Any]:
    """The module ``__getattr__`` of ``package``, caching each name in ``namespace``."""

    def __getattr__(name: str) -> Any:
        # Dunders are asked for by tools; ``plain``, by ``from ... import plain`` before it is
        # loaded: neither may load the statements (and SQLAlchemy).
        if name.startswith("__") or name == "plain":
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        statements = importlib.import_module(f"{package}.statements")
        try:
            value = getattr(statements, name)
        except AttributeError:
            raise AttributeError(f"module {package!r} has no attribute {name!r}") from None
        namespace[name] = value
        return value

    return __getattr__
