"""The claim's pipelined first round trip (psycopg, past SQLAlchemy) fails as every other
statement does: with SQLAlchemy's error classes, which the worker's outage detection reads,
and with the connection usable afterwards."""

from __future__ import annotations

import threading

import pytest
import sqlalchemy as sa

from teledispatch.db import messages as repo
from teledispatch.db.engine import make_engine
from tests.support import due_job


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_lanes_error_is_sqlalchemys_and_the_next_claim_works(database_url: str) -> None:
    engine = due_job(database_url, 5)
    claimer = make_engine(database_url)
    holder = make_engine(database_url)
    locked, release = threading.Event(), threading.Event()

    def hold() -> None:
        with holder.begin() as conn:
            conn.exec_driver_sql("LOCK TABLE messages IN ACCESS EXCLUSIVE MODE")
            locked.set()
            release.wait(30)

    thread = threading.Thread(target=hold)
    thread.start()
    try:
        assert locked.wait(30)
        with claimer.connect() as conn:  # the pool's most recent connection: the claim's
            conn.exec_driver_sql("SET lock_timeout = '100ms'")
            conn.commit()
        with pytest.raises(sa.exc.OperationalError, match="lock timeout"):
            repo.claim(claimer, "nx", 200, lease_s=60, now=1.0)
    finally:
        release.set()
        thread.join(30)
    assert len(repo.claim(claimer, "nx", 200, lease_s=60, now=1.0).messages) == 5
    claimer.dispose()
    holder.dispose()
    engine.dispose()
