"""Retries asked at the same moment from several threads (as several API replicas would):
every failed message is retried exactly once, and the new rows are numbered without a gap or
a collision, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading

import pytest
import sqlalchemy as sa

from teledispatch.db.engine import dispose_engines, get_engine
from teledispatch.db.tables import messages_table
from teledispatch.producer import submit
from teledispatch.producer.lookup import job_messages, job_status
from teledispatch.producer.retry import Retried, retry_job
from teledispatch.producer.submit import enqueue_stream
from tests.support import make_settings

N = 40
THREADS = 4


def test_concurrent_retries_retry_each_message_once(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(submit, "wake", lambda *a: None)
    cfg = make_settings(database_url)
    phones = [{"phone": f"+86138001{i:05d}"} for i in range(N)]
    job_id = enqueue_stream("nx", phones, defaults={"content": "x"}, cfg=cfg).job_id

    with get_engine(database_url).begin() as conn:
        conn.execute(sa.update(messages_table).values(status="failed", error_code="E"))
    results: list[Retried] = []
    errors: list[BaseException] = []
    start = threading.Barrier(THREADS)

    def run() -> None:
        try:
            start.wait(timeout=30)
            results.append(retry_job(job_id, cfg=cfg))
        except BaseException as exc:  # reported below, with the others
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    try:
        assert not errors, errors
        assert sum(r.retried for r in results) == N
        views = job_messages(job_id, limit=1000, cfg=cfg)
        retries = [v for v in views if v.retry_of]
        assert sorted(v.retry_of or "" for v in retries) == sorted(
            f"{job_id}-{i}" for i in range(N)
        )
        assert sorted(v.id for v in retries) == sorted(f"{job_id}-{i}" for i in range(N, 2 * N))
        assert job_status(job_id, cfg=cfg).total == 2 * N
    finally:
        dispose_engines(close=True)
