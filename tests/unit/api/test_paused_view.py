"""An account paused by its circuit, as the API's job view and ``teledispatch status`` show it."""

from __future__ import annotations

import argparse
import hashlib
import importlib

import fakeredis
import pytest
from fastapi.testclient import TestClient

from teledispatch import circuits
from teledispatch.api.app import create_app
from teledispatch.cli import jobs as cli_jobs
from teledispatch.config import Settings
from teledispatch.errors import NotSentError
from teledispatch.producer import submit as enqueue_mod
from teledispatch.producer.lookup import JobStatus, job_status
from teledispatch.producer.submit import enqueue_stream
from teledispatch.worker.circuit import Circuit
from tests.support import make_settings

KEY = "test-key"


@pytest.fixture
def cfg(db_url: str, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setattr(enqueue_mod, "wake", lambda cfg, account, delay: None)
    return make_settings(db_url)


@pytest.fixture
def redis(monkeypatch: pytest.MonkeyPatch) -> fakeredis.FakeRedis:
    client = fakeredis.FakeRedis()
    monkeypatch.setattr(circuits, "_client", lambda url: client)
    return client


def open_circuit(client: fakeredis.FakeRedis, cfg: Settings) -> None:
    acct = cfg.account("nx")
    for _ in range(acct.circuit_failures):
        Circuit(client).failure(acct, 1_800_000_000.0, NotSentError("refused", code="connect"))


def test_the_job_view_says_the_account_is_paused(cfg: Settings, redis: fakeredis.FakeRedis) -> None:
    job = enqueue_stream("nx", [{"phone": "8613800138000"}], defaults={"content": "x"}, cfg=cfg)
    api = TestClient(create_app(cfg, keys=[hashlib.sha256(KEY.encode()).digest()]))
    headers = {"Authorization": f"Bearer {KEY}"}
    assert api.get(f"/v1/jobs/{job.job_id}", headers=headers).json()["paused"] is None
    open_circuit(redis, cfg)
    paused = api.get(f"/v1/jobs/{job.job_id}", headers=headers).json()["paused"]
    assert paused == (
        "paused: [connect] refused since 2027-01-15T08:00:00Z, next probe at 2027-01-15T08:00:01Z"
    )


def test_status_prints_the_pause(
    cfg: Settings,
    redis: fakeredis.FakeRedis,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    job = enqueue_stream("nx", [{"phone": "8613800138000"}], defaults={"content": "x"}, cfg=cfg)
    # The verb imports both when it runs (a fast CLI start): patch them where they live.
    monkeypatch.setattr("teledispatch.config.settings", lambda: cfg)
    # (``teledispatch.producer.lookup`` as an attribute is the function of that name.)
    lookup_module = importlib.import_module("teledispatch.producer.lookup")
    monkeypatch.setattr(lookup_module, "job_status", lambda job_id: _status(job_id, cfg))
    open_circuit(redis, cfg)
    args = argparse.Namespace(job_id=job.job_id, json=False, wait=False, timeout=1.0)
    assert cli_jobs.cmd_status(args) == 0
    assert "account nx paused: [connect] refused since " in capsys.readouterr().out


def _status(job_id: str, cfg: Settings) -> JobStatus:
    return job_status(job_id, cfg=cfg)
