"""A package's exports, each imported from its module when first asked for (PEP 562).

Packages whose modules are costly to import (SQLAlchemy, Celery, pydantic) name where each
export lives; the CLI's quick verbs then load only what they use. Used by
``teledispatch.producer``, ``db/messages`` and the table packages ``db/jobs``,
``db/attempts`` and ``db/optouts`` (whose ``statements`` hold the SQLAlchemy side).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, MutableMapping
from typing import Any


def exports(
    package: str, namespace: MutableMapping[str, Any], where: Mapping[str, str]
) -> Callable[[str], Any]:
    """The module ``__getattr__`` of ``package``: ``where`` maps each export to its module
    (absolute, or relative to ``package`` with a leading dot); the value is cached in
    ``namespace``. Any other name (a dunder a tool asks for, a submodule not yet imported)
    is an ``AttributeError`` without importing anything."""

    def __getattr__(name: str) -> Any:
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module, package), name)
        namespace[name] = value
        return value

    return __getattr__
