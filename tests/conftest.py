"""Fixtures every tier may use: a SQLite file, and a domain context whose transport, broker and
Redis are in-process fakes (fast unit tests of the real domain code). Helpers that test modules
import live in ``tests/support.py``; the real services are fixtures there too."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fakeredis
import pytest

from teledispatch.worker.context import Context
from teledispatch.worker.testing import MockTransport
from tests.support import make_settings, nx_ok


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'td.db'}"


@pytest.fixture
def published() -> list[tuple[str, list[Any], str, float]]:
    return []


@pytest.fixture
def ctx(db_url: str, published: list[tuple[str, list[Any], str, float]]) -> Iterator[Context]:
    from teledispatch.db.engine import get_engine
    from teledispatch.db.tables import create_schema

    cfg = make_settings(db_url)
    engine = get_engine(db_url)
    create_schema(engine)
    yield Context(
        settings=cfg,
        engine=engine,
        redis=fakeredis.FakeRedis(),
        transport=MockTransport(nx_ok),
        publish=lambda name, args, queue, countdown: published.append(
            (name, args, queue, countdown)
        ),
    )
    engine.dispose()
