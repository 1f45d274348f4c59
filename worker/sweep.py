"""The periodic sweep (celery beat): whatever no task is waiting for, the sweep drives on.

It is what makes Redis expendable: retries and deferrals wait in the database with a due
time, a lost broker message or a crashed worker only delays a message until the next sweep.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from teledispatch import wakeups
from teledispatch.db import messages as repo
from teledispatch.worker.context import Context
from teledispatch.worker.reconcile import reconcile


@dataclass
class SweepReport:
    reclaimed: int = 0
    kicked: list[str] = field(default_factory=list)
    settled: int = 0
    resent: int = 0
    expired: int = 0


def sweep(ctx: Context) -> SweepReport:
    now = ctx.clock()
    accounts = ctx.settings.accounts
    report = SweepReport()
    report.reclaimed = repo.reclaim_expired(ctx.engine, accounts.values(), now)
    # Before the wake-ups: a row waiting, held by a window or for a retry past its expiry
    # is not sent late (a claim expires whatever this misses).
    report.expired = repo.expire_unsent(ctx.engine, now)
    for account in accounts.values():
        rec = reconcile(ctx, account)
        report.settled += rec.settled
        report.resent += rec.resent
        if repo.has_due(ctx.engine, account.name, now) and wakeups.kick(
            ctx.redis, ctx.publish, account, 0
        ):
            report.kicked.append(account.name)
    return report
