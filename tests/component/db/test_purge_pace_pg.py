"""On PostgreSQL, retention sees dispatch at work before any request is in flight: another
session running a statement (a big job's COPY) counts, so a purge does not run at full
speed beside a job being stored."""

from __future__ import annotations

import threading
import time

import pytest
import sqlalchemy as sa

from teledispatch.db import messages as messages_db
from teledispatch.db.engine import get_engine
from teledispatch.db.tables import create_schema

WAIT_S = 10.0


def _blocked(engine: sa.Engine) -> bool:
    with engine.connect() as conn:
        sql = (
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND state = 'active' AND wait_event_type = 'Lock'"
        )
        return bool(conn.exec_driver_sql(sql).scalar())


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_another_session_at_work_counts_as_busy(database_url: str) -> None:
    engine = get_engine(database_url)
    create_schema(engine)
    assert not messages_db.dispatch_at_work(engine)
    other = sa.create_engine(database_url)
    holder = other.connect()
    holder.begin()
    holder.exec_driver_sql("LOCK TABLE jobs IN ACCESS EXCLUSIVE MODE")

    def waiter() -> None:
        with other.connect() as conn:  # active, waiting for the lock: a statement at work
            conn.exec_driver_sql("SELECT count(*) FROM jobs").scalar()

    thread = threading.Thread(target=waiter, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + WAIT_S
        while not _blocked(engine):  # polls a condition, bounded
            assert time.monotonic() < deadline, "the second session never started waiting"
            time.sleep(0.01)
        assert messages_db.dispatch_at_work(engine)
    finally:
        holder.rollback()
        holder.close()
        thread.join(WAIT_S)
    assert not thread.is_alive()
    assert not messages_db.dispatch_at_work(engine)
    other.dispose()
