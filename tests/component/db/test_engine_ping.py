"""Pooled PostgreSQL connections are pinged only after they idled: a connection back from a
while away is checked (and replaced if its server dropped it), one in steady use is not."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from teledispatch.db import engine as engine_mod


def _backend(engine: sa.Engine) -> int:
    with engine.connect() as conn:
        return int(conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one())


def _terminate(url: str, pid: int) -> None:
    admin = sa.create_engine(url)
    try:
        with admin.connect() as conn:
            conn.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    finally:
        admin.dispose()


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_an_idle_connection_dropped_by_its_server_is_replaced_unseen(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine_mod, "PING_IDLE_S", 0.0)  # every pooled connection has idled
    engine = engine_mod.make_engine(database_url)
    try:
        first = _backend(engine)
        _terminate(database_url, first)
        assert _backend(engine) != first  # the ping found it gone: a new one, no error
    finally:
        engine.dispose()


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_connection_in_steady_use_is_not_pinged(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine_mod, "PING_IDLE_S", 3600.0)
    engine = engine_mod.make_engine(database_url)
    try:
        first = _backend(engine)
        _terminate(database_url, first)
        # Not pinged: its one statement meets the dropped connection, and the pool then
        # drops it; the next checkout connects afresh.
        with pytest.raises(sa.exc.OperationalError):
            _backend(engine)
        assert _backend(engine) != first
    finally:
        engine.dispose()
