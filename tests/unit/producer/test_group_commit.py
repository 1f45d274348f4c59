"""The group-committing producer: validated at the call, stored in shared transactions."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from teledispatch.config import Settings
from teledispatch.db import messages as messages_db
from teledispatch.db.engine import get_engine
from teledispatch.db.tables import create_schema, jobs_table, messages_table
from teledispatch.producer import group_commit as batching
from teledispatch.producer import submit as submit_mod
from teledispatch.producer.group_commit import Producer, ProducerClosed
from teledispatch.producer.jobs import SendJob
from teledispatch.producer.lookup import job_status
from teledispatch.validation import ValidationFailed
from tests.support import make_settings


@pytest.fixture
def cfg(db_url: str) -> Settings:
    settings = make_settings(db_url)
    create_schema(get_engine(db_url))
    return settings


@pytest.fixture
def woken(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    out: list[str] = []
    monkeypatch.setattr(submit_mod, "wake", lambda cfg, account, delay: out.append(account.name))
    return out


@pytest.fixture
def writes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Jobs per shared transaction."""
    sizes: list[int] = []
    real = Producer._write

    def counting(self: Producer, batch: list[Any]) -> None:
        real(self, batch)
        sizes.append(len(batch))

    monkeypatch.setattr(Producer, "_write", counting)
    return sizes


def otp(i: int) -> SendJob:
    return SendJob(
        account="nx", recipients=[{"phone": f"+86139{i:08d}"}], defaults={"content": f"{i}"}
    )


def count(cfg: Settings, table: sa.Table) -> int:
    with get_engine(cfg.database_url).connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


def test_jobs_from_many_threads_share_transactions(
    cfg: Settings, woken: list[str], writes: list[int]
) -> None:
    ids: list[str] = []
    lock = threading.Lock()
    with Producer(cfg, linger_ms=50) as producer:

        def app_thread(base: int) -> None:
            for i in range(base, base + 50):
                pending = producer.submit(otp(i))
                with lock:
                    ids.append(pending.job_id)

        threads = [threading.Thread(target=app_thread, args=(k * 100,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
    assert len(set(ids)) == 200 == sum(writes)
    assert len(writes) < 200 / 4, f"{len(writes)} transactions for 200 jobs"
    assert count(cfg, jobs_table) == 200 == count(cfg, messages_table)
    assert job_status(ids[0], cfg=cfg).counts == {"queued": 1}
    assert woken and set(woken) == {"nx"} and len(woken) == len(writes)


def test_bad_input_fails_at_the_call_and_queues_nothing(cfg: Settings, writes: list[int]) -> None:
    with Producer(cfg) as producer:
        with pytest.raises(ValidationFailed, match=r"recipients\[0\]\.phone = '12'"):
            producer.submit_recipients("nx", [{"phone": "12", "content": "x"}])
        producer.flush(5)
    assert writes == [] and count(cfg, jobs_table) == 0


def test_result_waits_until_durable(cfg: Settings, woken: list[str]) -> None:
    with Producer(cfg, linger_ms=10_000) as producer:
        pending = producer.submit(otp(1))
        assert not pending.done() and count(cfg, jobs_table) == 0
        producer.flush(5)  # cuts the linger short
        stored = pending.result(0)
    assert stored.job_id == pending.job_id and stored.total == 1 and stored.created
    assert count(cfg, messages_table) == 1


def test_a_failed_transaction_fails_every_job_in_it_and_stores_none(
    cfg: Settings, woken: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(batching, "FLUSH_ATTEMPTS", 2)
    real = messages_db.insert_messages
    calls: list[int] = []

    def broken(conn: Any, rows: Any, **kw: Any) -> None:
        calls.append(len(rows))
        real(conn, rows, **kw)
        raise sa.exc.OperationalError("INSERT", {}, Exception("connection lost"))

    monkeypatch.setattr(messages_db, "insert_messages", broken)
    producer = Producer(cfg, linger_ms=50)
    first, second = producer.submit(otp(1)), producer.submit(otp(2))
    with pytest.raises(sa.exc.OperationalError):
        producer.flush(5)
    for pending in (first, second):
        with pytest.raises(sa.exc.OperationalError, match="connection lost"):
            pending.result(0)
    assert calls == [2, 2]  # both jobs in one transaction, tried twice
    assert count(cfg, jobs_table) == 0 == count(cfg, messages_table) and woken == []
    monkeypatch.setattr(messages_db, "insert_messages", real)
    third = producer.submit(otp(3))
    producer.close(5)
    assert third.result(0).job_id == third.job_id and count(cfg, jobs_table) == 1


def test_idempotent_jobs_take_the_synchronous_path(cfg: Settings, woken: list[str]) -> None:
    job = otp(1).model_copy(update={"idempotency_key": "order-1"})
    with Producer(cfg) as producer:
        first = producer.submit(job)
        assert first.done()  # durable before submit returned
        again = producer.submit(job)
    assert again.job_id == first.job_id and not again.result(0).created
    assert count(cfg, jobs_table) == 1


def test_scheduled_jobs_are_stored_but_not_woken(cfg: Settings, woken: list[str]) -> None:
    later = datetime.now(UTC) + timedelta(hours=2)
    with Producer(cfg) as producer:
        pending = producer.submit(otp(1).model_copy(update={"not_before": later}))
    assert pending.result(0).total == 1 and woken == []


def test_submit_after_close_is_refused(cfg: Settings, woken: list[str]) -> None:
    producer = Producer(cfg)
    producer.close()
    producer.close()  # idempotent
    with pytest.raises(ProducerClosed):
        producer.submit(otp(1))


def test_a_big_iterator_is_stored_in_parts(
    cfg: Settings, woken: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(submit_mod, "PART_SIZE", 10)
    monkeypatch.setattr(batching, "PART_SIZE", 10)
    rows = ({"phone": f"+86139{i:08d}", "content": "x"} for i in range(25))
    with Producer(cfg) as producer:
        pending = producer.submit_recipients("nx", rows)
    assert pending.result(0).total == 25 and count(cfg, messages_table) == 25


def test_a_commit_whose_answer_was_lost_counts_as_stored(
    cfg: Settings, woken: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The transaction committed but the connection died before saying so: the retry finds
    the jobs there and reports them stored (not failed, and not stored twice)."""
    real = Producer._write
    calls: list[int] = []

    def commit_then_lose_answer(self: Producer, batch: list[Any]) -> None:
        calls.append(len(batch))
        real(self, batch)
        if len(calls) == 1:
            raise sa.exc.OperationalError("COMMIT", {}, Exception("server closed the connection"))

    monkeypatch.setattr(Producer, "_write", commit_then_lose_answer)
    with Producer(cfg, linger_ms=50) as producer:
        pending = producer.submit(otp(1))
    assert pending.result(0).job_id == pending.job_id
    assert calls == [1] and count(cfg, jobs_table) == 1 and woken == ["nx"]


def test_a_submit_racing_close_is_refused_not_lost(
    cfg: Settings, woken: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    producer = Producer(cfg)
    real = submit_mod.records_for  # what group_commit imported

    def close_meanwhile(*args: Any, **kw: Any) -> Any:
        producer.close(5)  # another thread closes while this submit is validating
        return real(*args, **kw)

    monkeypatch.setattr(batching, "records_for", close_meanwhile)
    with pytest.raises(ProducerClosed):
        producer.submit(otp(1))
    assert count(cfg, jobs_table) == 0


@pytest.fixture
def wake_delays(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    out: list[float] = []
    monkeypatch.setattr(submit_mod, "wake", lambda cfg, account, delay: out.append(delay))
    return out


def test_a_full_batch_is_woken_without_the_linger(db_url: str, wake_delays: list[float]) -> None:
    """The linger lets single recipients share a request; rows that fill one need not wait."""
    cfg = make_settings(db_url, linger_ms=400, max_batch=3)
    create_schema(get_engine(db_url))
    submit_mod.enqueue(otp(1), cfg=cfg)
    big = [{"phone": f"+86139{i:08d}", "content": "x"} for i in range(3)]
    submit_mod.enqueue_stream("nx", big, cfg=cfg)
    with Producer(cfg, linger_ms=10_000) as producer:
        producer.submit(otp(10))
        producer.flush(5)
        for i in range(20, 23):
            producer.submit(otp(i))
        producer.flush(5)
    assert wake_delays == [0.4, 0.0, 0.4, 0.0]


def test_a_job_due_within_a_second_is_woken_for_its_start(
    db_url: str, wake_delays: list[float]
) -> None:
    """Woken when due, not at once: a dispatch before then would find nothing to send."""
    cfg = make_settings(db_url, linger_ms=0, max_batch=3)
    create_schema(get_engine(db_url))
    start = datetime.now(UTC) + timedelta(seconds=0.6)
    big = [{"phone": f"+86139{i:08d}", "content": "x"} for i in range(3)]
    submit_mod.enqueue_stream("nx", big, not_before=start, cfg=cfg)
    (delay,) = wake_delays
    assert 0.3 < delay <= 0.6
