"""The validated-rows spool: the same content hash as every earlier release, the same stored
rows whether they stayed in memory or went through the temporary file.

The content hash decides whether a retried idempotency key names the same job, so a job
stored by an earlier release and retried after an upgrade must hash the same: the digest below
was computed by the release that spooled every row as JSON lines.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa

from teledispatch.config import Settings
from teledispatch.db.engine import get_engine
from teledispatch.db.tables import create_schema, jobs_table, messages_table
from teledispatch.producer import _spool, submit
from teledispatch.producer.submit import enqueue_stream, prepare
from tests.support import make_settings

NOT_BEFORE = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
DEFAULTS = {"content": "hello"}
RECIPIENTS: list[dict[str, Any]] = [
    {"phone": "86 138-0013-8000", "content": '您的订单已发货 ✓ "quoted" \u2028 line'},
    {"phone": 8613800138001, "short_link": True, "ext": "e\n1"},
    {"phone": "+447911123456", "source_address": "Shop1", "dr_url": "https://x.test/dr"},
]
#: What the validator makes of RECIPIENTS over DEFAULTS, in order.
CLEAN: list[dict[str, Any]] = [
    {"phone": "+8613800138000", "content": '您的订单已发货 ✓ "quoted" \u2028 line'},
    {"phone": "+8613800138001", "content": "hello", "ext": "e\n1", "short_link": 1},
    {
        "phone": "+447911123456",
        "content": "hello",
        "source_address": "Shop1",
        "dr_url": "https://x.test/dr",
    },
]
#: prepare()'s content_hash for RECIPIENTS, NOT_BEFORE and DEFAULTS before this spool existed.
EARLIER_RELEASE_HASH = "1a488ab3d17241190ac178d9a3467f8d88a8d0b0c8b4f741caf9230c4dfde16d"


def legacy_hash(clean: list[dict[str, Any]], account: str, not_before: float | None) -> str:
    """The content hash as the JSON-lines spool defined it: each ``[index, fields]`` line
    (compact, unescaped), then the header."""
    h = hashlib.sha256()
    for index, fields in enumerate(clean):
        h.update(json.dumps([index, fields], ensure_ascii=False, separators=(",", ":")).encode())
    header = {"account": account, "not_before": not_before, "allow_duplicates": False}
    h.update(json.dumps(header, sort_keys=True).encode())
    return h.hexdigest()


@pytest.fixture
def cfg(db_url: str, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setattr(submit, "wake", lambda *a: None)
    return make_settings(db_url)


def _hash(cfg: Settings) -> str:
    row, spool = prepare(cfg, "nx", RECIPIENTS, DEFAULTS, None, NOT_BEFORE, False)
    spool.close()
    return str(row["content_hash"])


def test_content_hash_is_the_earlier_releases(cfg: Settings) -> None:
    assert legacy_hash(CLEAN, "nx", NOT_BEFORE.timestamp()) == EARLIER_RELEASE_HASH
    assert _hash(cfg) == EARLIER_RELEASE_HASH


def test_content_hash_is_the_same_when_rows_spill_to_the_file(
    cfg: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_spool, "SPOOL_MEMORY_ROWS", 1)
    assert _hash(cfg) == EARLIER_RELEASE_HASH


def _stored(cfg: Settings) -> list[tuple[int, str, str, str]]:
    engine = get_engine(cfg.database_url)
    m = messages_table
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(m.c.seq, m.c.phone, m.c.group_key, m.c.payload).order_by(m.c.seq)
        )
        return [tuple(r) for r in rows]


@pytest.mark.parametrize("memory_rows", [0, 1, 2, 3, 100])
def test_rows_are_stored_alike_from_memory_and_from_the_file(
    cfg: Settings, monkeypatch: pytest.MonkeyPatch, memory_rows: int
) -> None:
    """Parts of 2 over 3 rows, with 0..all of them kept in memory: every split between memory
    and file stores the same rows, payloads byte for byte."""
    monkeypatch.setattr(_spool, "SPOOL_MEMORY_ROWS", memory_rows)
    monkeypatch.setattr(submit, "PART_SIZE", 2)
    job = enqueue_stream("nx", RECIPIENTS, defaults=DEFAULTS, cfg=cfg)
    assert job.total == 3
    expected = [
        (i, c["phone"], "", json.dumps(c, ensure_ascii=False, separators=(",", ":")))
        for i, c in enumerate(CLEAN)
    ]
    assert _stored(cfg) == expected


def test_a_job_stored_by_an_earlier_release_is_recognised_on_retry(cfg: Settings) -> None:
    """An idempotency key whose job was written before the upgrade (half its rows stored):
    the retry finds it by content hash, returns it and stores the missing rows."""
    engine = get_engine(cfg.database_url)
    create_schema(engine)
    with engine.begin() as conn:
        conn.execute(
            jobs_table.insert(),
            {
                "id": "old-job",
                "account": "nx",
                "channel": "nxcloud.sms",
                "total": 3,
                "parts": 1,
                "defaults": json.dumps(DEFAULTS),
                "idempotency_key": "order-1",
                "content_hash": EARLIER_RELEASE_HASH,
                "not_before": NOT_BEFORE.timestamp(),
                "created_at": 0.0,
            },
        )
    job = enqueue_stream(
        "nx",
        RECIPIENTS,
        defaults=DEFAULTS,
        idempotency_key="order-1",
        not_before=NOT_BEFORE,
        cfg=cfg,
    )
    assert (job.job_id, job.total, job.created) == ("old-job", 3, False)
    assert [row[1] for row in _stored(cfg)] == [c["phone"] for c in CLEAN]
    other = [*RECIPIENTS[:2], {"phone": "+447911123457"}]
    with pytest.raises(submit.IdempotencyConflict):
        enqueue_stream(
            "nx",
            other,
            defaults=DEFAULTS,
            idempotency_key="order-1",
            not_before=NOT_BEFORE,
            cfg=cfg,
        )
