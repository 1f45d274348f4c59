"""Who gets the next claim's rows: lanes in order, weighted fair share between jobs within one.

Pure and typed; the claim (``teledispatch.db.messages.claims``) asks :func:`plan` how many
rows to take from each job with rows due, then takes them. The rule:

- Lanes are strict: high takes what it has due, up to the whole batch; normal gets what high
  left, low what both left. So high may use the account's whole rate, low only the rest.
- Within a lane every job with rows due gets a share of the lane's rows proportional to its
  ``weight`` (water-filling: a job with fewer rows due than its share takes them all and the
  rest is shared among the others), so a small job started beside a huge one is served at
  half the rate, not after it.
- Shares are fractional and rows whole. Each job carries a *credit* (the fraction it was
  owed or overpaid, in ``(-1, 1)``) from one claim to the next, as deficit round robin does,
  so over many claims each job's rows follow its weight exactly, not just per claim.

Credits are the caller's to keep (per account and lane); a job that has nothing due drops its
credit, as it is not owed rows for time it was idle.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Demand:
    """One job's rows due in one lane."""

    job_id: str
    #: 0 high, 1 normal, 2 low: lower numbers are served first.
    lane: int
    #: Relative share within its lane (> 0).
    weight: float
    #: Rows due now (callers may cap it at the batch size: more cannot be taken anyway).
    due: int


@dataclass(frozen=True, slots=True)
class Plan:
    #: Rows to take per job (only jobs that get at least one).
    takes: dict[str, int] = field(default_factory=dict)
    #: Credit per job to pass to the next :func:`plan` (jobs still with rows due only).
    credit: dict[str, float] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.takes.values())


def fair_split(amount: float, demands: Sequence[Demand]) -> dict[str, float]:
    """``amount`` shared by weight, no job above its ``due`` (water-filling); fractional."""
    out: dict[str, float] = {}
    left = [d for d in demands if d.due > 0 and d.weight > 0]
    rest = float(amount)
    while left and rest > 1e-9:
        total_w = sum(d.weight for d in left)
        capped = [d for d in left if d.due <= rest * d.weight / total_w]
        if not capped:
            for d in left:
                out[d.job_id] = out.get(d.job_id, 0.0) + rest * d.weight / total_w
            return out
        for d in capped:
            out[d.job_id] = float(d.due)
            rest -= d.due
        left = [d for d in left if d not in capped]
    return out


def _share_lane(
    demands: Sequence[Demand], rows: int, credit: Mapping[str, float]
) -> tuple[dict[str, int], dict[str, float]]:
    """Whole rows for one lane's jobs, ``rows`` of them (fewer only if less is due)."""
    due = {d.job_id: d.due for d in demands}
    ideal = fair_split(min(rows, sum(due.values())), demands)
    # What each job is owed this time: its share plus what it was owed before.
    owed = {j: ideal.get(j, 0.0) + credit.get(j, 0.0) for j in due}
    takes = {j: max(0, min(due[j], math.floor(owed[j] + 1e-9))) for j in due}
    spare = min(rows, sum(due.values())) - sum(takes.values())
    # Rows left by rounding go to the jobs owed most (ties: the order given, oldest first).
    order = sorted(due, key=lambda j: -(owed[j] - takes[j]))
    while spare > 0:
        moved = False
        for j in order:
            if spare and takes[j] < due[j]:
                takes[j] += 1
                spare -= 1
                moved = True
        if not moved:
            break
    while spare < 0:  # credits may have asked for more than the lane has rows for
        for j in sorted(due, key=lambda j: owed[j] - takes[j]):
            if spare < 0 and takes[j] > 0:
                takes[j] -= 1
                spare += 1
    new_credit = {
        # A job whose share was all it had due is not owed for rows it did not have.
        j: max(-1.0, min(1.0, owed[j] - takes[j]))
        for j in due
        if ideal.get(j, 0.0) < due[j] - 1e-9
    }
    return {j: n for j, n in takes.items() if n > 0}, new_credit


def plan(demands: Sequence[Demand], batch: int, credit: Mapping[str, float] | None = None) -> Plan:
    """How many rows to take from each job for a claim of ``batch`` rows.

    ``demands`` lists each job's rows due (order matters only to break ties: give older jobs
    first); ``credit`` is the previous plan's :attr:`Plan.credit` for the same account.
    """
    credit = credit or {}
    takes: dict[str, int] = {}
    new_credit: dict[str, float] = {}
    rows = max(0, batch)
    for lane in sorted({d.lane for d in demands}):
        if rows <= 0:
            break
        lane_demands = [d for d in demands if d.lane == lane and d.due > 0]
        got, owed = _share_lane(lane_demands, rows, credit)
        takes.update(got)
        new_credit.update(owed)
        rows -= sum(got.values())
    return Plan(takes, new_credit)
