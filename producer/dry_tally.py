"""The dry run's tally and report, on reads given by the caller: ``producer.dry_run`` reads
through SQLAlchemy, ``producer.quick_dry_run`` through the database's own driver (for
``send --dry-run``, which must start without SQLAlchemy and pydantic), so what a dry run
counts and reports is written once.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Protocol

from teledispatch import clock
from teledispatch.channels.base import ChannelRules
from teledispatch.channels.sms_segments import measure
from teledispatch.outcomes import iso
from teledispatch.pricing import price_for
from teledispatch.producer._spool import _Spool
from teledispatch.producer._validate import Accounts, _as_epoch, _check_quiet_hours, _validate
from teledispatch.quiet_hours import Window, hold, resolve, zones_for
from teledispatch.validation import Problem, ValidationFailed

#: Recipients checked against the suppression lists per query, as a real enqueue's part.
CHECK_CHUNK = 5000


class DryReads(Protocol):
    """The two reads of a dry run."""

    def suppressed_among(self, account: str, phones: Sequence[str]) -> set[str]:
        """Which of ``phones`` are on ``account``'s suppression list or the global one."""
        ...

    def waiting_count(self, account: str) -> int:
        """The account's messages already waiting (queued or deferred)."""
        ...


class PricedAccount(Protocol):
    """What the report reads of an account: ``config.AccountConfig``, or the model-free view
    of ``config_quick``."""

    @property
    def name(self) -> str: ...
    @property
    def channel(self) -> str: ...
    @property
    def prices(self) -> tuple[tuple[str, float], ...]: ...
    @property
    def quiet_hours(self) -> str | None: ...
    @property
    def default_priority(self) -> str: ...
    @property
    def max_requests_per_second(self) -> float | None: ...
    @property
    def max_messages_per_second(self) -> float | None: ...
    @property
    def max_messages_per_hour(self) -> int | None: ...
    @property
    def max_messages_per_day(self) -> int | None: ...
    @property
    def batch_size(self) -> int: ...


class _Tally(_Spool):
    """A spool that keeps no rows, only what the report needs of them.

    Rows wait in a small buffer until a chunk can be checked against the suppression lists
    in one indexed query (as enqueue checks each part); suppressed ones are counted, and
    left out of segments and cost, since they are never sent."""

    def __init__(
        self,
        rules: ChannelRules,
        account: PricedAccount,
        reads: DryReads,
        quiet: Window | None,
        start: float,
    ) -> None:
        super().__init__(rules)
        self.keeps_all = True
        self.account = account.name
        self.prices = account.prices
        self.reads = reads
        self.segments: Counter[str] = Counter()
        self.cost = 0.0
        self.unpriced = 0
        self.suppressed = 0
        self.quiet = quiet
        self.start = start
        #: The latest quiet-hours opening among the recipients (``start`` if none waits).
        self.opens = start
        self._holds: dict[tuple[str, ...], float] = {}
        self._pending: list[tuple[str, str | None, int]] = []

    def add(self, index: int, fields: dict[str, Any]) -> None:
        self.count += 1
        units = 1
        encoding: str | None = None
        text = fields.get(self.text_field) if self.text_field is not None else None
        if isinstance(text, str):
            measured = measure(text)
            encoding, units = measured.encoding, measured.parts
        self._pending.append((str(fields["phone"]), encoding, units))
        if len(self._pending) >= CHECK_CHUNK:
            self.flush()

    def flush(self) -> None:
        pending, self._pending = self._pending, []
        if not pending:
            return
        found = self.reads.suppressed_among(self.account, [p for p, _, _ in pending])
        for phone, encoding, units in pending:
            if phone in found:
                self.suppressed += 1
                continue
            if encoding is not None:
                self.segments[encoding] += units
            price = price_for(self.prices, phone)
            if price is None:
                self.unpriced += 1
            else:
                self.cost += price * units
            if self.quiet is not None:
                self.opens = max(self.opens, self._opening(phone))

    def _opening(self, phone: str) -> float:
        """When ``phone`` may first be sent from the job's start (one decision per zone set)."""
        zones = zones_for(phone)
        if not zones or self.quiet is None:
            return self.start
        if zones not in self._holds:
            held = hold(self.quiet, zones, self.start)
            self._holds[zones] = self.start if held is None else held.until
        return self._holds[zones]


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
    #: Recipients on the account's or the global suppression list: stored ``suppressed``,
    #: never sent (counted in ``recipients``, left out of ``segments`` and ``cost``).
    suppressed: int
    #: SMS segments by encoding, ``{"gsm7": n, "ucs2": m}``; empty for channels without text.
    segments: dict[str, int]
    #: Estimated cost of the valid recipients; None without a price table.
    cost: float | None
    #: Recipients no price matched (left out of ``cost``).
    unpriced: int
    #: Messages of the account already waiting, which this job would queue behind.
    backlog: int
    #: When the last of them would be sent at the account's limits, after the latest
    #: quiet-hours opening of its recipients; None when the account sets no limit.
    eta: str | None
    problems: list[Problem] = field(default_factory=list)
    #: Every problem found; ``problems`` may list fewer.
    problems_total: int = 0
    #: The route of a routed job (``account``: its first recipient's first member).
    route: str | None = None

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["problems"] = [asdict(p) for p in self.problems]
        return out


def _window_wait(n: int, cap: int | None, window_s: float) -> float:
    """Whole windows ``n`` messages must wait under ``cap`` per window (the last one is open)."""
    return 0.0 if cap is None or n <= 0 else ((n - 1) // cap) * window_s


def send_seconds(account: PricedAccount, n: int) -> float | None:
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


def account_report(
    cfg: Accounts,
    acc: PricedAccount,
    recipients: Iterable[Mapping[str, Any]],
    reads: Callable[[], AbstractContextManager[DryReads]],
    *,
    defaults: Mapping[str, Any] | None = None,
    not_before: datetime | None = None,
    allow_duplicates: bool = False,
    priority: str | None = None,
    quiet_hours: str | None = None,
) -> DryRun:
    """``producer.dry_run.dry_run`` for the account ``acc`` (looked up in ``cfg`` by the
    caller), reading through what ``reads`` opens; it is opened after the job-wide checks and
    before the first recipient is read."""
    now = time.time()
    start = max(now, _as_epoch(not_before) or 0.0)
    account = acc.name
    window = resolve(
        _check_quiet_hours(quiet_hours), acc.quiet_hours, priority or acc.default_priority
    )
    quiet = Window.parse(window) if window else None
    # The quiet-hours decision on the same clock a real enqueue uses (moved only by tests).
    start_clock = start + clock.offset()
    made: list[_Tally] = []
    with reads() as db:

        def tally(rules: ChannelRules, acc: PricedAccount) -> _Spool:
            made.append(_Tally(rules, acc, db, quiet, start_clock))
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
            channel, problems, total = acc.channel, exc.problems, exc.total
        counted = made[0]
        counted.flush()
        backlog = db.waiting_count(account)
    seconds = send_seconds(acc, backlog + counted.count - counted.suppressed)
    # Nothing held by quiet hours leaves before its opening: the wait counts in the ETA.
    ready = start + (counted.opens - start_clock)
    return DryRun(
        account=account,
        channel=channel,
        recipients=counted.count,
        invalid=counted.invalid_rows,
        duplicates=counted.duplicates,
        suppressed=counted.suppressed,
        segments=dict(sorted(counted.segments.items())),
        cost=round(counted.cost, 6) if acc.prices else None,
        unpriced=counted.unpriced if acc.prices else 0,
        backlog=backlog,
        eta=None if seconds is None else iso(ready + seconds),
        problems=problems,
        problems_total=total,
    )
