"""The scheduling rule on its pure core: lanes strictly ordered, shares by weight over time,
no job starved, every row accounted for."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from teledispatch.scheduling import Demand, Plan, fair_split, plan


def run(jobs: dict[str, tuple[int, float, int]], batch: int, claims: int) -> dict[str, int]:
    """``claims`` plans in a row against jobs of (lane, weight, backlog); rows taken each."""
    left = {j: n for j, (_, _, n) in jobs.items()}
    taken = dict.fromkeys(jobs, 0)
    credit: dict[str, float] = {}
    for _ in range(claims):
        demands = [Demand(j, lane, w, min(left[j], batch)) for j, (lane, w, _) in jobs.items()]
        p = plan([d for d in demands if d.due], batch, credit)
        credit = p.credit
        for j, n in p.takes.items():
            assert 0 < n <= left[j]
            left[j] -= n
            taken[j] += n
    return taken


def test_two_equal_jobs_split_a_claim_evenly() -> None:
    p = plan([Demand("a", 1, 1.0, 200), Demand("b", 1, 1.0, 200)], 200)
    assert p.takes == {"a": 100, "b": 100}


def test_a_small_job_takes_all_it_has_and_the_big_one_the_rest() -> None:
    p = plan([Demand("big", 1, 1.0, 200), Demand("small", 1, 1.0, 30)], 200)
    assert p.takes == {"big": 170, "small": 30}


def test_weights_scale_the_share() -> None:
    p = plan([Demand("a", 1, 3.0, 400), Demand("b", 1, 1.0, 400)], 200)
    assert p.takes == {"a": 150, "b": 50}


def test_high_takes_everything_before_normal_and_low_only_the_rest() -> None:
    demands = [Demand("otp", 0, 1.0, 5), Demand("camp", 1, 1.0, 300), Demand("bulk", 2, 1.0, 300)]
    assert plan(demands, 200).takes == {"otp": 5, "camp": 195}
    assert plan(demands[::2], 200).takes == {"otp": 5, "bulk": 195}


def test_credit_carries_the_fraction_so_three_jobs_share_exactly_over_time() -> None:
    # 200 rows over 3 equal jobs cannot split evenly in one claim; over three claims it does.
    taken = run({"a": (1, 1.0, 10**6), "b": (1, 1.0, 10**6), "c": (1, 1.0, 10**6)}, 200, 3)
    assert taken == {"a": 200, "b": 200, "c": 200}


def test_a_one_row_job_is_not_starved_by_rounding() -> None:
    # Weight 1 of 1001: its share is under one row per claim; credit makes it one every few.
    taken = run({"big": (1, 1000.0, 10**6), "tiny": (1, 1.0, 10**6)}, 10, 300)
    assert 2 <= taken["tiny"] <= 4


def test_fair_split_is_water_filling() -> None:
    got = fair_split(100, [Demand("a", 1, 1, 10), Demand("b", 1, 1, 1000), Demand("c", 1, 2, 1000)])
    assert got == {"a": 10.0, "b": 30.0, "c": 60.0}


job = st.tuples(
    st.integers(min_value=0, max_value=2),  # lane
    st.sampled_from([0.5, 1.0, 2.0, 3.0]),  # weight
    st.integers(min_value=1, max_value=5000),  # backlog
)
jobs_st = st.dictionaries(st.sampled_from("abcdefgh"), job, min_size=1, max_size=6)


@settings(max_examples=200, deadline=None)
@given(jobs=jobs_st, batch=st.integers(min_value=1, max_value=300))
def test_one_plan_conserves_rows_and_orders_lanes(
    jobs: dict[str, tuple[int, float, int]], batch: int
) -> None:
    demands = [Demand(j, lane, w, min(n, batch)) for j, (lane, w, n) in jobs.items()]
    p: Plan = plan(demands, batch)
    due = {d.job_id: d.due for d in demands}
    # Totals: exactly the batch, or everything due if less is.
    assert p.total == min(batch, sum(due.values()))
    assert all(0 < n <= due[j] for j, n in p.takes.items())
    # Lanes strictly ordered: a job of a later lane gets rows only if every job of an earlier
    # lane got all it had due.
    for d in demands:
        if p.takes.get(d.job_id):
            for e in demands:
                if e.lane < d.lane:
                    assert p.takes.get(e.job_id, 0) == e.due


@settings(max_examples=100, deadline=None)
@given(
    weights=st.lists(st.sampled_from([0.5, 1.0, 2.0, 3.0]), min_size=2, max_size=5),
    batch=st.integers(min_value=1, max_value=250),
    claims=st.integers(min_value=20, max_value=60),
)
def test_shares_follow_weights_over_time_and_none_is_starved(
    weights: list[float], batch: int, claims: int
) -> None:
    """Jobs of one lane that always have rows due: after any number of claims each job's rows
    are its weighted share of all rows taken, within one row plus the credit bound."""
    jobs = {f"j{i}": (1, w, 10**9) for i, w in enumerate(weights)}
    taken = run(jobs, batch, claims)
    total = sum(taken.values())
    assert total == batch * claims
    w_sum = sum(weights)
    for i, w in enumerate(weights):
        assert abs(taken[f"j{i}"] - total * w / w_sum) <= 2.0
    # None starved: once the claims add up to a row for every job, every job got one.
    if total >= len(weights) * w_sum / min(weights):
        assert all(n > 0 for n in taken.values())


@settings(max_examples=100, deadline=None)
@given(jobs=jobs_st, batch=st.integers(min_value=1, max_value=300))
def test_every_row_is_taken_exactly_once_in_the_end(
    jobs: dict[str, tuple[int, float, int]], batch: int
) -> None:
    total = sum(n for _, _, n in jobs.values())
    claims = -(-total // batch)
    taken = run(jobs, batch, claims)
    assert taken == {j: n for j, (_, _, n) in jobs.items()}
