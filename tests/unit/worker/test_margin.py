"""The adaptive margin's pure core: a high percentile of measured answer times, bounded."""

from __future__ import annotations

import pytest

from teledispatch.worker.ratelimit.margin import MarginEstimator, margin_from, percentile


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]  # 1..100
    assert percentile(values, 99) == 99.0
    assert percentile(values, 50) == 50.0
    assert percentile(values, 100) == 100.0
    assert percentile([7.0], 99) == 7.0
    with pytest.raises(ValueError):
        percentile([], 99)


def test_too_few_samples_keep_the_fixed_margin() -> None:
    assert margin_from([0.001] * 49, ceiling_s=0.02, min_samples=50) == 0.02
    assert margin_from([0.001] * 50, ceiling_s=0.02, min_samples=50) == 0.003  # the floor


def test_margin_follows_the_percentile_times_safety() -> None:
    samples = [0.002] * 98 + [0.008, 0.050]  # p99 is 8 ms: the one outlier does not count
    assert margin_from(samples, ceiling_s=0.02, safety=1.5, pct=99) == pytest.approx(0.012)


def test_by_default_the_slowest_recent_answer_sets_the_margin() -> None:
    # One late arrival is enough for a window over when every request leaves on its window's
    # edge: no sample of the window is left out.
    samples = [0.002] * 99 + [0.009]
    assert margin_from(samples, ceiling_s=0.02, safety=1.5) == pytest.approx(0.0135)


def test_margin_is_bounded_above_by_the_configured_one() -> None:
    assert margin_from([0.1] * 100, ceiling_s=0.02) == 0.02


def test_floor_never_exceeds_the_ceiling() -> None:
    assert margin_from([0.0] * 100, ceiling_s=0.001, floor_s=0.003) == 0.001


def test_estimator_keeps_accounts_apart_and_slides() -> None:
    est = MarginEstimator(ceiling_s=0.02, window=100, min_samples=10, safety=1.0)
    assert est.margin("a") == 0.02  # nothing measured yet
    for _ in range(100):
        est.observe("a", 0.004)
        est.observe("b", 0.015)
    assert est.margin("a") == pytest.approx(0.004)
    assert est.margin("b") == pytest.approx(0.015)
    # A slower provider now: within one window the margin follows it up.
    est.observe_all("a", [0.010] * 100)
    assert est.margin("a") == pytest.approx(0.010)


def test_estimator_ignores_impossible_samples() -> None:
    est = MarginEstimator(ceiling_s=0.02, window=10, min_samples=10, safety=1.0)
    est.observe_all("a", [float("nan"), -1.0] * 10)
    assert est.margin("a") == 0.02


def test_estimator_refuses_bad_settings() -> None:
    with pytest.raises(ValueError):
        MarginEstimator(ceiling_s=0.02, window=10, min_samples=11)
    with pytest.raises(ValueError):
        MarginEstimator(ceiling_s=-1.0)
