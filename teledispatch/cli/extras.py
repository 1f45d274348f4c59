"""Which optional dependency (pip extra) a verb needs, checked before it starts.

``pip install teledispatch`` gives an app the producer and the CLI's send/status/lookup; the
server roles come with extras. A verb whose extra is missing says so in one line instead of
dying in a child process with an ImportError traceback.
"""

from __future__ import annotations

import importlib.util

from teledispatch.errors import Error

#: The import names each extra of pyproject.toml provides.
EXTRA_MODULES: dict[str, tuple[str, ...]] = {
    "server": ("httpx", "fastapi", "uvicorn", "prometheus_client"),
    "flower": ("flower",),
    "embedded": ("fakeredis", "lupa"),
}


class MissingExtra(Error, ImportError):
    """A verb needs an extra that is not installed; the message says how to install it."""


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ImportError:  # a finder that refuses it, or a broken install: not usable either way
        return False


def require_extra(extra: str, what: str) -> None:
    """Raise :class:`MissingExtra` unless every module of ``extra`` can be imported."""
    missing = [m for m in EXTRA_MODULES[extra] if not _installed(m)]
    if missing:
        raise MissingExtra(
            f"{what} needs the '{extra}' extra (missing: {', '.join(missing)}); "
            f"install it with: pip install 'teledispatch[{extra}]'"
        )
