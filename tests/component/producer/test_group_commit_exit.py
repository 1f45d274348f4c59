"""The group-commit producer in a process of its own: what an exiting app leaves stored."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from typing import Any

import pytest

from teledispatch.config import Settings
from teledispatch.db.engine import get_engine
from teledispatch.db.tables import create_schema
from teledispatch.producer.lookup import job_status
from tests.support import make_settings


@pytest.fixture
def cfg(db_url: str) -> Settings:
    settings = make_settings(db_url)
    create_schema(get_engine(db_url))
    return settings


def test_an_app_that_forgets_close_still_stores_at_exit(cfg: Settings, tmp_path: Any) -> None:
    """A script that submits and simply ends: the exit hook flushes before the thread dies."""
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
