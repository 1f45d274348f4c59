"""Each SMS's encoding and segments are stored at enqueue and shown by lookup and status."""

from __future__ import annotations

from typing import Any

import pytest

from teledispatch.config import Settings
from teledispatch.producer import _spool, submit
from teledispatch.producer.lookup import job_messages, job_status
from teledispatch.producer.submit import enqueue_stream
from tests.support import make_settings


@pytest.fixture
def cfg(db_url: str, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setattr(submit, "wake", lambda *a: None)
    return make_settings(db_url)


RECIPIENTS: list[dict[str, Any]] = [
    {"phone": "+8613800138000", "content": "a" * 161},
    {"phone": "+8613800138001", "content": "你好"},
    {"phone": "+8613800138002", "content": "Hi there"},
]


def test_segments_are_stored_per_message_and_summed_per_job(cfg: Settings) -> None:
    job = enqueue_stream("nx", RECIPIENTS, cfg=cfg)
    views = job_messages(job.job_id, cfg=cfg)
    assert [(v.encoding, v.segments) for v in views] == [("gsm7", 2), ("ucs2", 1), ("gsm7", 1)]
    assert job_status(job.job_id, cfg=cfg).segments == {"gsm7": 3, "ucs2": 1}


def test_spooled_to_file_rows_get_segments_too(
    cfg: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_spool, "SPOOL_MEMORY_ROWS", 1)
    job = enqueue_stream("nx", RECIPIENTS, cfg=cfg)
    views = job_messages(job.job_id, cfg=cfg)
    assert [v.segments for v in views] == [2, 1, 1]
