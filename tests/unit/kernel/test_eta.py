"""The ETA on its pure core, checked against the limits (a clock is passed, never read)."""

from __future__ import annotations

import pytest

from teledispatch.eta import Limits, Load, estimate, finish_times

NOW = 1_000_000.0


def load(job: str, n: int, lane: int = 1, weight: float = 1.0, ready: float = NOW) -> Load:
    return Load(job, lane, weight, n, ready)


def test_one_job_at_the_messages_rate() -> None:
    assert estimate("a", [load("a", 1000)], Limits(messages_per_second=50), NOW) == NOW + 20


def test_requests_per_second_times_batch_size_is_the_rate_when_it_is_slower() -> None:
    limits = Limits(messages_per_second=1000, requests_per_second=2, batch_size=200)
    assert limits.rate == 400
    assert estimate("a", [load("a", 4000)], limits, NOW) == NOW + 10


def test_a_small_job_beside_a_huge_one_takes_twice_its_size_over_the_rate() -> None:
    loads = [load("big", 1_000_000), load("small", 5000)]
    eta = estimate("small", loads, Limits(messages_per_second=100), NOW)
    assert eta == pytest.approx(NOW + 2 * 5000 / 100)


def test_the_rate_a_finished_job_leaves_goes_to_the_others() -> None:
    loads = [load("big", 1000), load("small", 100)]
    done = finish_times(loads, 10.0, NOW)
    assert done["small"] == pytest.approx(NOW + 20)  # 5/s each while both are active
    assert done["big"] == pytest.approx(NOW + 110)  # then 10/s: (1000 + 100) / 10


def test_weight_scales_the_share() -> None:
    loads = [load("heavy", 300, weight=3), load("light", 1000)]
    assert estimate("heavy", loads, Limits(messages_per_second=40), NOW) == pytest.approx(NOW + 10)


def test_high_goes_first_and_low_waits_for_normal() -> None:
    loads = [load("otp", 100, lane=0), load("camp", 1000), load("bulk", 500, lane=2)]
    limits = Limits(messages_per_second=100)
    assert estimate("otp", loads, limits, NOW) == pytest.approx(NOW + 1)
    assert estimate("camp", loads, limits, NOW) == pytest.approx(NOW + 11)
    assert estimate("bulk", loads, limits, NOW) == pytest.approx(NOW + 16)


def test_rows_due_later_start_then() -> None:
    loads = [load("later", 500, ready=NOW + 60), load("now", 100)]
    # "now" is alone for its 2 s; "later" starts at +60 and has the whole rate.
    assert estimate("later", loads, Limits(messages_per_second=50), NOW) == pytest.approx(NOW + 70)


def test_hour_cap_pushes_the_finish_to_the_window_its_messages_fit_in() -> None:
    limits = Limits(messages_per_second=100, messages_per_hour=1000)
    assert estimate("a", [load("a", 3500)], limits, NOW) == NOW + 3 * 3600
    # Without a rate, only the windows: 1000 per hour go at once.
    assert estimate("a", [load("a", 2500)], Limits(messages_per_hour=1000), NOW) == (NOW + 2 * 3600)


def test_no_limit_no_estimate_and_nothing_left_is_now() -> None:
    assert estimate("a", [load("a", 10)], Limits(), NOW) is None
    assert estimate("a", [load("a", 0)], Limits(messages_per_second=1), NOW) == NOW
    assert estimate("a", [], Limits(messages_per_second=1), NOW) == NOW
