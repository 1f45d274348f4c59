"""Shared fixtures: a settings object with one NXCloud account, and a domain context whose
transport, broker and Redis are in-process fakes (fast unit tests of the real domain code)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fakeredis
import pytest

from teledispatch.channels.base import HttpRequest
from teledispatch.config import Settings, parse_config
from teledispatch.worker.context import Context
from teledispatch.worker.testing import MockTransport
from teledispatch.worker.transport import HttpResponse


def nx_ok(request: HttpRequest) -> HttpResponse:
    """NXCloud's answer when every item is accepted."""
    body = json.loads(request.body)
    data = [
        {"phone": i["phone"], "messageid": i["sysMessageId"], "status": "Success", "message": ""}
        for i in body["items"]
    ]
    return HttpResponse(200, {}, json.dumps({"code": 0, "message": "ok", "data": data}).encode())


def make_settings(db_url: str, **account: Any) -> Settings:
    table = {
        "channel": "nxcloud.sms",
        "base_url": "http://nx.test",
        "access_key": "ak",
        "secret": "sk",
        "app_key": "app",
        "backoff_base_s": 0.01,
        "linger_ms": 0,
        **account,
    }
    accounts = parse_config({"accounts": {"nx": table}})
    return Settings(accounts=accounts, redis_url="redis://fake", database_url=db_url)


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
