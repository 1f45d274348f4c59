"""Fair-share claims and kept places on both databases (the unit tests run them on SQLite
only): the per-job ``UPDATE`` is a different statement on PostgreSQL (``ctid = ANY(ARRAY(…)
|| …)`` with ``FOR UPDATE SKIP LOCKED`` per job)."""

from __future__ import annotations

import pytest

from teledispatch.producer import submit
from tests.unit.db import test_fair_share as cases


@pytest.fixture(autouse=True)
def no_wake(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(submit, "wake", lambda cfg, account, delay: None)


def test_a_job_started_beside_a_big_one_gets_half(database_url: str) -> None:
    cases.test_a_job_started_beside_a_big_one_gets_half_of_each_claim(database_url)


def test_weight_scales_a_jobs_share(database_url: str) -> None:
    cases.test_weight_scales_a_jobs_share(database_url)


def test_lanes_stay_strict_with_shares(database_url: str) -> None:
    cases.test_lanes_stay_strict_with_shares(database_url)


def test_a_handed_back_row_keeps_its_place(database_url: str) -> None:
    cases.test_a_row_handed_back_keeps_its_place_and_waits_for_its_hold(database_url)


def test_one_claim_takes_from_hundreds_of_single_jobs(database_url: str) -> None:
    cases.test_one_claim_takes_from_hundreds_of_single_jobs(database_url)
