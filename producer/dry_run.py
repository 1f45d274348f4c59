"""What a job would do, without enqueueing it: ``send --dry-run`` and ``?dry_run=true``.

Every recipient is validated exactly as :func:`~teledispatch.producer.submit.enqueue_stream`
would (the same ``_validate``), but valid rows go to a tally instead of a spool: recipients,
refused rows with their reasons, duplicates, SMS segments by encoding, the cost from the
account's price table and a simple ETA from its rate limits and the backlog already queued.
Nothing is written; the only read is the backlog count.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from teledispatch.channels.base import ChannelRules
from teledispatch.channels.sms_segments import measure
from teledispatch.config import AccountConfig, Settings, settings
from teledispatch.db import messages as messages_db
from teledispatch.db.engine import get_engine
from teledispatch.db.migrate import ensure_schema
from teledispatch.pricing import price_for
from teledispatch.producer.lookup import iso
from teledispatch.producer.submit import _as_epoch, _Spool, _validate
from teledispatch.validation import Problem, ValidationFailed


class _Tally(_Spool):
    """A spool that keeps no rows, only what the report needs of them."""

    def __init__(self, rules: ChannelRules, account: AccountConfig) -> None:
        super().__init__(rules)
        self.keeps_all = True
        self.prices = account.prices
        self.segments: Counter[str] = Counter()
        self.cost = 0.0
        self.unpriced = 0

    def add(self, index: int, fields: dict[str, Any]) -> None:
        self.count += 1
        units = 1
        text = fields.get(self.text_field) if self.text_field is not None else None
        if isinstance(text, str):
            measured = measure(text)
            self.segments[measured.encoding] += measured.parts
            units = measured.parts
        price = price_for(self.prices, str(fields["phone"]))
        if price is None:
            self.unpriced += 1
        else:
            self.cost += price * units


@dataclass(frozen=True)
class DryRun:
    account: str
    channel: str
    #: Recipients that would be enqueued.
    recipients: int
    #: Rows refused (each with one or more problems, listed in ``problems``).
    invalid: int
    #: Refused as a repeat of an earlier recipient of the job (counted in ``invalid`` too).
    duplicates: int
    #: Opted-out recipients (no suppression list exists yet).
    suppressed: int
    #: SMS segments by encoding, ``{"gsm7": n, "ucs2": m}``; empty for channels without text.
    segments: dict[str, int]
    #: Estimated cost of the valid recipients; None without a price table.
    cost: float | None
    #: Recipients no price matched (left out of ``cost``).
    unpriced: int
    #: Messages of the account already waiting, which this job would queue behind.
    backlog: int
    #: When the last of them would be sent at the account's limits; None when it has none.
    eta: str | None
    problems: list[Problem] = field(default_factory=list)
    #: Every problem found; ``problems`` may list fewer.
    problems_total: int = 0

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["problems"] = [asdict(p) for p in self.problems]
        return out


def _window_wait(n: int, cap: int | None, window_s: float) -> float:
    """Whole windows ``n`` messages must wait under ``cap`` per window (the last one is open)."""
    return 0.0 if cap is None or n <= 0 else ((n - 1) // cap) * window_s


def send_seconds(account: AccountConfig, n: int) -> float | None:
    """How long ``n`` messages take at the account's limits; None when it sets none.

    Simple on purpose: each limit alone, the slowest wins; retries, receipts and other jobs
    arriving meanwhile are not foreseen."""
    waits: list[float] = []
    if account.max_messages_per_second:
        waits.append(n / account.max_messages_per_second)
    if account.max_requests_per_second:
        waits.append(-(-n // account.batch_size) / account.max_requests_per_second)
    if account.max_messages_per_hour:
        waits.append(_window_wait(n, account.max_messages_per_hour, 3600.0))
    if account.max_messages_per_day:
        waits.append(_window_wait(n, account.max_messages_per_day, 86400.0))
    return max(waits) if waits else None


def _backlog(cfg: Settings, account: str) -> int:
    ensure_schema(cfg.database_url)
    with get_engine(cfg.database_url).connect() as conn:
        return messages_db.waiting_count(conn, account)


def dry_run(
    account: str,
    recipients: Iterable[Mapping[str, Any]],
    *,
    defaults: Mapping[str, Any] | None = None,
    not_before: datetime | None = None,
    allow_duplicates: bool = False,
    cfg: Settings | None = None,
) -> DryRun:
    """Report what enqueueing this job would do; store nothing. A problem with the job as a
    whole (an unknown account, a broken job-wide template) raises :class:`ValidationFailed`."""
    cfg = cfg or settings()
    now = time.time()
    made: list[_Tally] = []

    def tally(rules: ChannelRules, acc: AccountConfig) -> _Spool:
        made.append(_Tally(rules, acc))
        return made[0]

    problems: list[Problem] = []
    total = 0
    try:
        channel, _ = _validate(
            cfg, account, recipients, defaults or {}, allow_duplicates, now, tally
        )
    except ValidationFailed as exc:
        if not made:
            raise
        channel, problems, total = cfg.account(account).channel, exc.problems, exc.total
    counted, acc = made[0], cfg.account(account)
    backlog = _backlog(cfg, account)
    seconds = send_seconds(acc, backlog + counted.count)
    start = max(now, _as_epoch(not_before) or 0.0)
    return DryRun(
        account=account,
        channel=channel,
        recipients=counted.count,
        invalid=counted.invalid_rows,
        duplicates=counted.duplicates,
        suppressed=0,
        segments=dict(sorted(counted.segments.items())),
        cost=round(counted.cost, 6) if acc.prices else None,
        unpriced=counted.unpriced if acc.prices else 0,
        backlog=backlog,
        eta=None if seconds is None else iso(start + seconds),
        problems=problems,
        problems_total=total,
    )
