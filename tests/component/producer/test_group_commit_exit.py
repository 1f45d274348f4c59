"""The group-committing producer: validated at the call, stored in shared transactions."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from teledispatch.config import Settings
from teledispatch.db.engine import get_engine
from teledispatch.db.tables import create_schema
from teledispatch.producer import submit as submit_mod
from teledispatch.producer.group_commit import Producer
from teledispatch.producer.jobs import SendJob
from teledispatch.producer.lookup import job_status
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


def test_an_app_that_forgets_close_still_stores_at_exit(cfg: Settings, tmp_path: Any) -> None:
    """A script that submits and simply ends: the exit hook flushes before the thread dies."""
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent(
        f"""
        from teledispatch.producer import submit
        from teledispatch.producer.group_commit import Producer
        from tests.support import make_settings

        submit.wake = lambda *a: None  # no broker in this test
        producer = Producer(make_settings({cfg.database_url!r}), linger_ms=60_000)
        job = {{"phone": "+8613800138000", "content": "x"}}
        print(producer.submit_recipients("nx", [job]).job_id)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    job_id = out.stdout.strip()
    assert job_status(job_id, cfg=cfg).counts == {"queued": 1}


@pytest.fixture
def wake_delays(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    out: list[float] = []
    monkeypatch.setattr(submit_mod, "wake", lambda cfg, account, delay: out.append(delay))
    return out
