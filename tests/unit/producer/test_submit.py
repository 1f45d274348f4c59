"""Enqueue-time validation: one error naming every problem, and nothing enqueued."""

from __future__ import annotations

from typing import Any

import pytest

from teledispatch.config import Settings
from teledispatch.db import messages as messages_db
from teledispatch.producer import submit
from teledispatch.producer.jobs import SendJob
from teledispatch.producer.lookup import JobNotFound, job_status
from teledispatch.producer.submit import IdempotencyConflict, enqueue, enqueue_stream
from teledispatch.validation import ValidationFailed
from tests.support import make_settings


@pytest.fixture
def cfg(db_url: str) -> Settings:
    return make_settings(db_url)


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Wake-ups asked for, one per stored part."""
    out: list[Any] = []
    monkeypatch.setattr(submit, "wake", lambda cfg, account, delay: out.append(account.name))
    return out


def stored(cfg: Settings) -> int:
    import sqlalchemy as sa

    from teledispatch.db.engine import get_engine
    from teledispatch.db.tables import create_schema, messages_table

    engine = get_engine(cfg.database_url)
    create_schema(engine)
    with engine.connect() as conn:
        return int(
            conn.execute(sa.select(sa.func.count()).select_from(messages_table)).scalar_one()
        )


def problems_of(exc: pytest.ExceptionInfo[ValidationFailed]) -> list[str]:
    return [str(p) for p in exc.value.problems]


def test_every_problem_is_listed_and_nothing_enqueued(cfg: Settings, sent: list[Any]) -> None:
    recipients = [
        {"phone": "+8613800138000", "content": "ok"},
        {"phone": "12", "content": "ok"},
        {"phone": "+8613800138001", "content": ""},
        {"phone": "+8613800138002", "content": "x" * 1001},
        {"phone": "+8613800138003", "content": "ok", "source_address": "bad-sender!"},
        {"phone": "+8613800138000", "content": "again"},
        {"phone": "+8613800138004", "content": "ok", "colour": "red"},
    ]
    with pytest.raises(ValidationFailed) as exc:
        enqueue_stream("nx", recipients, cfg=cfg)
    assert problems_of(exc) == [
        "recipients[1].phone = '12': must be a phone number with country code (E.164)",
        "recipients[2].content = '': must be 1–1000 characters (got 0)",
        "recipients[3].content = '" + "x" * 57 + "...': must be 1–1000 characters (got 1001)",
        "recipients[4].source_address = 'bad-sender!': must be 1–20 letters or digits",
        "recipients[5].phone = '+8613800138000': "
        "duplicate recipient in this job (set allow_duplicates to send again)",
        "recipients[6].colour = 'red': unknown field (known: content, dr_url, ext, "
        "link_verbose, phone, short_link, source_address)",
    ]
    assert str(exc.value).startswith("job rejected, 6 problems: recipients[1].phone")
    assert sent == [] and stored(cfg) == 0


def test_unknown_account_is_one_clear_problem(cfg: Settings, sent: list[Any]) -> None:
    with pytest.raises(ValidationFailed) as exc:
        enqueue_stream("nope", [{"phone": "+8613800138000", "content": "x"}], cfg=cfg)
    assert "account 'nope' is not configured" in str(exc.value)
    assert "(configured: nx)" in str(exc.value)


def test_phone_plus_is_optional_and_normalised(cfg: Settings, sent: list[Any]) -> None:
    from teledispatch.producer.lookup import lookup

    enqueue_stream("nx", [{"phone": "86 138-0013-8000", "content": "x"}], cfg=cfg)
    assert lookup(phone="+8613800138000", cfg=cfg)[0].phone == "+8613800138000"


def test_duplicates_allowed_when_asked(cfg: Settings, sent: list[Any]) -> None:
    r = [{"phone": "+8613800138000", "content": "a"}, {"phone": "8613800138000", "content": "b"}]
    assert enqueue_stream("nx", r, cfg=cfg, allow_duplicates=True).total == 2


def test_idempotency_key_returns_same_job_and_refuses_other_content(
    cfg: Settings, sent: list[Any]
) -> None:
    job = SendJob(
        account="nx",
        recipients=[{"phone": "+8613800138000"}],
        defaults={"content": "hello"},
        idempotency_key="order-17",
    )
    first = enqueue(job, cfg=cfg)
    assert enqueue(job, cfg=cfg) == first
    changed = job.model_copy(update={"defaults": {"content": "other"}})
    with pytest.raises(IdempotencyConflict, match="order-17"):
        enqueue(changed, cfg=cfg)
    assert job_status(first, cfg=cfg).total == 1


def test_failed_validation_writes_no_job(cfg: Settings, sent: list[Any]) -> None:
    with pytest.raises(ValidationFailed):
        enqueue_stream("nx", [{"phone": "bad", "content": "x"}], cfg=cfg)
    with pytest.raises(JobNotFound):
        job_status("anything", cfg=cfg)


def test_large_job_stored_in_parts_each_waking_dispatch(cfg: Settings, sent: list[Any]) -> None:
    n = submit.PART_SIZE * 2 + 7
    gen = ({"phone": f"+86139{i:08d}", "content": "x"} for i in range(n))
    assert enqueue_stream("nx", gen, cfg=cfg).total == n
    assert stored(cfg) == n
    assert sent == ["nx", "nx", "nx"]


def test_error_message_is_capped_but_count_is_exact(cfg: Settings, sent: list[Any]) -> None:
    gen = ({"phone": "bad", "content": "x"} for _ in range(5000))
    with pytest.raises(ValidationFailed) as exc:
        enqueue_stream("nx", gen, cfg=cfg)
    assert exc.value.total == 5000
    assert len(exc.value.problems) == submit.PROBLEM_KEEP
    assert str(exc.value).endswith("; and 4950 more")


def test_scheduled_job_is_not_woken_with_a_long_countdown(cfg: Settings, sent: list[Any]) -> None:
    from datetime import UTC, datetime, timedelta

    later = datetime.now(UTC) + timedelta(days=2)
    job = enqueue_stream(
        "nx", [{"phone": "+8613800138000", "content": "x"}], not_before=later, cfg=cfg
    )
    assert sent == []  # the sweep wakes it when due; no countdown of days in the broker
    from teledispatch.producer.lookup import job_status

    st = job_status(job.job_id, cfg=cfg)
    assert st.counts == {"queued": 1} and st.next_due_at is not None
    assert st.next_due_at.startswith(later.date().isoformat())


def test_one_part_job_is_stored_atomically(
    cfg: Settings, sent: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A job of one part writes its header and rows in one transaction: a failure storing the
    rows leaves no job behind (nothing half-enqueued), and a retry with the same key works."""

    def broken(conn: Any, rows: Any, **kw: Any) -> None:
        raise RuntimeError("database went away mid-insert")

    original = messages_db.insert_messages
    monkeypatch.setattr(messages_db, "insert_messages", broken)
    with pytest.raises(RuntimeError, match="went away"):
        enqueue_stream(
            "nx", [{"phone": "+8613800138000", "content": "x"}], idempotency_key="k1", cfg=cfg
        )
    assert stored(cfg) == 0 and sent == []
    monkeypatch.setattr(messages_db, "insert_messages", original)
    job = enqueue_stream(
        "nx", [{"phone": "+8613800138000", "content": "x"}], idempotency_key="k1", cfg=cfg
    )
    assert job.created and job_status(job.job_id, cfg=cfg).counts == {"queued": 1}
    assert sent == ["nx"]


def test_a_lone_surrogate_is_a_validation_problem_not_a_crash(
    cfg: Settings, sent: list[Any]
) -> None:
    """``"\\ud800"`` is valid JSON and decodes to text no database can store."""
    recipients = [
        {"phone": "+8613800138000", "content": "ok é"},
        {"phone": "+8613800138001", "content": "bad \ud800"},
    ]
    with pytest.raises(ValidationFailed) as exc:
        enqueue_stream("nx", recipients, cfg=cfg)
    assert problems_of(exc) == [
        "recipients[1].content = 'bad \\ud800': must be valid Unicode (no lone surrogate)"
    ]
    assert stored(cfg) == 0


def test_an_idempotency_key_with_another_callback_is_another_job(
    cfg: Settings, sent: list[Any]
) -> None:
    job = SendJob(
        account="nx",
        recipients=[{"phone": "+8613800138000"}],
        defaults={"content": "hello"},
        idempotency_key="order-18",
        callback_url="https://apps.example/hooks/a",
    )
    first = enqueue(job, cfg=cfg)
    assert enqueue(job, cfg=cfg) == first
    moved = job.model_copy(update={"callback_url": "https://apps.example/hooks/b"})
    with pytest.raises(IdempotencyConflict, match="order-18"):
        enqueue(moved, cfg=cfg)


@pytest.mark.parametrize(
    ("url", "rule"),
    [
        ("http://apps.example/hooks", "scheme 'http' is not allowed (allowed: https)"),
        ("https://127.0.0.1/hooks", "non-public address 127.0.0.1 is not allowed"),
        ("https://[bad/hooks", "not a valid URL (Invalid IPv6 URL)"),
    ],
)
def test_a_callback_url_delivery_would_refuse_is_refused_at_enqueue(
    cfg: Settings, sent: list[Any], url: str, rule: str
) -> None:
    with pytest.raises(ValidationFailed) as exc:
        enqueue_stream(
            "nx",
            [{"phone": "+8613800138000"}],
            defaults={"content": "hello"},
            callback_url=url,
            priority="urgent",
            cfg=cfg,
        )
    # Every job-wide problem in one error, each naming field, value and rule.
    assert problems_of(exc) == [
        "priority = 'urgent': one of high, normal, low",
        f"callback_url = {url!r}: {rule}",
    ]
    assert sent == [] and stored(cfg) == 0


def test_webhook_settings_open_http_and_private_callbacks(db_url: str, sent: list[Any]) -> None:
    import dataclasses

    from teledispatch.config import WebhookSettings

    opened = WebhookSettings(allow_http=True, allow_private_networks=True)
    cfg = dataclasses.replace(make_settings(db_url), webhooks=opened)
    job = SendJob(
        account="nx",
        recipients=[{"phone": "+8613800138000"}],
        defaults={"content": "hello"},
        callback_url="http://127.0.0.1:8080/hooks",
    )
    assert enqueue(job, cfg=cfg)
    assert stored(cfg) == 1
