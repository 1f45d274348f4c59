"""Retrying a job's finished messages: new rows linked to the originals; nothing that may
have been sent; nothing twice."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from teledispatch.config import Settings
from teledispatch.db.engine import get_engine
from teledispatch.db.tables import jobs_table, messages_table
from teledispatch.producer import submit
from teledispatch.producer.cancel import cancel_job
from teledispatch.producer.lookup import JobNotFound, job_messages, job_status
from teledispatch.producer.retry import (
    SKIP_ALREADY_RETRIED,
    SKIP_CANCELLED,
    SKIP_EXPIRED,
    SKIP_MAY_HAVE_BEEN_SENT,
    retry_job,
)
from teledispatch.producer.submit import enqueue_stream
from tests.support import make_settings

m = messages_table.c


@pytest.fixture
def cfg(db_url: str, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setattr(submit, "wake", lambda *a: None)
    return make_settings(db_url)


#: index → (status, error_code, error_text) written over the stored rows.
OUTCOMES = {
    0: ("sent", None, None),
    1: ("failed", "E1", "refused"),
    2: ("failed", "E2", "bad number"),
    3: ("failed", "timeout", "read timed out (may have been sent)"),
    4: ("unknown", "unreconciled", "may have been sent (no status query)"),
    5: ("delivered", None, None),
}


def _set(cfg: Settings, message_id: str, status: str, code: str | None, text: str | None) -> None:
    with get_engine(cfg.database_url).begin() as conn:
        conn.execute(
            sa.update(messages_table)
            .where(m.id == message_id)
            .values(status=status, error_code=code, error_text=text, attempts=3)
        )


def _job(cfg: Settings) -> str:
    phones = [{"phone": f"+861380013800{i}"} for i in OUTCOMES]
    job_id = enqueue_stream("nx", phones, defaults={"content": "hi"}, cfg=cfg).job_id
    for i, outcome in OUTCOMES.items():
        _set(cfg, f"{job_id}-{i}", *outcome)
    return job_id


def test_failed_messages_are_sent_again_as_new_linked_rows(cfg: Settings) -> None:
    job_id = _job(cfg)
    result = retry_job(job_id, cfg=cfg)
    assert result.retried == 2
    assert [(s.reason, s.count) for s in result.skipped] == [(SKIP_MAY_HAVE_BEEN_SENT, 1)]
    views = {v.id: v for v in job_messages(job_id, cfg=cfg)}
    new = [views[f"{job_id}-6"], views[f"{job_id}-7"]]
    assert [(v.retry_of, v.status, v.attempts) for v in new] == [
        (f"{job_id}-1", "queued", 0),
        (f"{job_id}-2", "queued", 0),
    ]
    assert (
        new[0].phone == views[f"{job_id}-1"].phone and new[0].fields == views[f"{job_id}-1"].fields
    )
    # The originals keep what happened to them.
    assert views[f"{job_id}-1"].status == "failed" and views[f"{job_id}-1"].error_code == "E1"
    st = job_status(job_id, cfg=cfg)
    assert st.total == 8 and st.accepted == 8 and st.counts["queued"] == 2 and not st.done


def test_retrying_twice_sends_nothing_twice_but_retries_a_failed_retry(cfg: Settings) -> None:
    job_id = _job(cfg)
    retry_job(job_id, cfg=cfg)
    again = retry_job(job_id, cfg=cfg)
    assert again.retried == 0
    assert {s.reason: s.count for s in again.skipped} == {
        SKIP_MAY_HAVE_BEEN_SENT: 1,
        SKIP_ALREADY_RETRIED: 2,
    }
    _set(cfg, f"{job_id}-6", "failed", "E1", "refused again")
    third = retry_job(job_id, cfg=cfg)
    assert third.retried == 1
    (newest,) = [v for v in job_messages(job_id, cfg=cfg) if v.id == f"{job_id}-8"]
    assert newest.retry_of == f"{job_id}-6"


def test_error_codes_choose_which_failures(cfg: Settings) -> None:
    job_id = _job(cfg)
    result = retry_job(job_id, error_codes=["E2"], cfg=cfg)
    assert result.retried == 1 and result.skipped == []
    retried = [v.retry_of for v in job_messages(job_id, cfg=cfg) if v.retry_of]
    assert retried == [f"{job_id}-2"]


def test_unknown_messages_are_never_sent_again(cfg: Settings) -> None:
    job_id = _job(cfg)
    result = retry_job(job_id, statuses=["unknown"], cfg=cfg)
    assert result.retried == 0
    assert [(s.reason, s.count) for s in result.skipped] == [(SKIP_MAY_HAVE_BEEN_SENT, 1)]
    assert job_status(job_id, cfg=cfg).total == len(OUTCOMES)


def test_a_cancelled_job_is_not_retried(cfg: Settings) -> None:
    job_id = _job(cfg)
    cancel_job(job_id, cfg=cfg)
    result = retry_job(job_id, cfg=cfg)
    assert result.retried == 0
    assert {s.reason: s.count for s in result.skipped} == {
        SKIP_CANCELLED: 2,
        SKIP_MAY_HAVE_BEEN_SENT: 1,
    }


def test_an_expired_job_is_not_retried(cfg: Settings) -> None:
    phones = [{"phone": "+8613800138000"}]
    # Expired on 1 January 1970: no clock to wait for.
    job_id = enqueue_stream("nx", phones, defaults={"content": "hi"}, cfg=cfg).job_id
    _set(cfg, f"{job_id}-0", "failed", "E1", "refused")
    with get_engine(cfg.database_url).begin() as conn:
        conn.execute(sa.update(jobs_table).values(expires_at=1.0))
    result = retry_job(job_id, cfg=cfg)
    assert result.retried == 0
    assert [(s.reason, s.count) for s in result.skipped] == [(SKIP_EXPIRED, 1)]


def test_unknown_job_and_bad_status_are_refused(cfg: Settings) -> None:
    with pytest.raises(JobNotFound):
        retry_job("nope", cfg=cfg)
    with pytest.raises(ValueError, match="sent"):
        retry_job(_job(cfg), statuses=["sent"], cfg=cfg)
