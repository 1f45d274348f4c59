"""What a job would do, without enqueueing it: ``send --dry-run`` and ``?dry_run=true``.

Every recipient is validated exactly as :func:`~teledispatch.producer.submit.enqueue_stream`
would (the same ``_validate``), but valid rows go to a tally instead of a spool: recipients,
refused rows with their reasons, duplicates, SMS segments by encoding, the cost from the
account's price table and a simple ETA from its rate limits and the backlog already queued.
Nothing is written; the only reads are the suppression lists and the backlog count. The
tally and the report are ``dry_tally``'s; here they read through SQLAlchemy.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from teledispatch.channels.sms_segments import measure
from teledispatch.config import Settings, settings
from teledispatch.db import messages as messages_db
from teledispatch.db import optouts as optouts_db
from teledispatch.db.engine import get_engine
from teledispatch.db.migrate import ensure_schema
from teledispatch.pricing import price_for

# Defined in dry_tally (no SQLAlchemy there, for the CLI's quick dry run); named here, where
# the app, the API and the tests have always found them.
from teledispatch.producer.dry_tally import CHECK_CHUNK as CHECK_CHUNK
from teledispatch.producer.dry_tally import DryRun as DryRun
from teledispatch.producer.dry_tally import account_report
from teledispatch.producer.dry_tally import send_seconds as send_seconds
from teledispatch.routes import payload_for


class CoreDryReads:
    """:class:`teledispatch.producer.dry_tally.DryReads` on a SQLAlchemy connection."""

    def __init__(self, conn: sa.Connection) -> None:
        self.conn = conn

    def suppressed_among(self, account: str, phones: Sequence[str]) -> set[str]:
        return optouts_db.suppressed_among(self.conn, account, phones)

    def waiting_count(self, account: str) -> int:
        return messages_db.waiting_count(self.conn, account)


def dry_run(
    account: str,
    recipients: Iterable[Mapping[str, Any]],
    *,
    defaults: Mapping[str, Any] | None = None,
    not_before: datetime | None = None,
    allow_duplicates: bool = False,
    priority: str | None = None,
    quiet_hours: str | None = None,
    cfg: Settings | None = None,
) -> DryRun:
    """Report what enqueueing this job would do; store nothing. A problem with the job as a
    whole (an unknown account, a broken job-wide template) raises :class:`ValidationFailed`.

    ``priority`` and ``quiet_hours`` as for :func:`enqueue_stream`: the quiet hours in force
    (none for ``high``) push the ETA to the latest opening among the recipients."""
    cfg = cfg or settings()
    acc = cfg.account(account)
    url = cfg.database_url

    @contextmanager
    def reads() -> Iterator[CoreDryReads]:
        ensure_schema(url)
        with get_engine(url).connect() as conn:
            yield CoreDryReads(conn)

    return account_report(
        cfg,
        acc,
        recipients,
        reads,
        defaults=defaults,
        not_before=not_before,
        allow_duplicates=allow_duplicates,
        priority=priority,
        quiet_hours=quiet_hours,
    )


def dry_run_route(
    route_name: str,
    recipients: Iterable[Mapping[str, Any]],
    *,
    defaults: Mapping[str, Any] | None = None,
    allow_duplicates: bool = False,
    cfg: Settings | None = None,
) -> DryRun:
    """:func:`dry_run` for a job naming a route: each valid recipient counted on the first
    member serving its number (where it is stored while every circuit is closed), screened
    against that member's suppression list and the global one, its segments and price from
    that member. No ETA: the members' limits and the circuits decide it."""
    from teledispatch.producer.routed import _route, check_route_job

    cfg = cfg or settings()
    route = _route(cfg, route_name)
    checked = check_route_job(cfg, route, list(recipients), defaults or {}, allow_duplicates)
    by_account: dict[str, list[tuple[str, str]]] = {}
    for _, phone, text in checked.rows:
        by_account.setdefault(route.accounts_for(phone)[0], []).append((phone, text))
    segments: Counter[str] = Counter()
    cost, unpriced, suppressed, backlog, priced = 0.0, 0, 0, 0, False
    ensure_schema(cfg.database_url)
    with get_engine(cfg.database_url).connect() as conn:
        for name, rows in by_account.items():
            acc = cfg.account(name)
            priced = priced or bool(acc.prices)
            found: set[str] = set()
            for start in range(0, len(rows), CHECK_CHUNK):
                chunk = [p for p, _ in rows[start : start + CHECK_CHUNK]]
                found |= optouts_db.suppressed_among(conn, name, chunk)
            for phone, text in rows:
                if phone in found:
                    suppressed += 1
                    continue
                units = 1
                if "content" in payload_for(route, name, acc.channel, phone, text):
                    measured = measure(text)
                    segments[measured.encoding] += measured.parts
                    units = measured.parts
                price = price_for(acc.prices, phone) if acc.prices else None
                if price is None:
                    unpriced += bool(acc.prices)
                else:
                    cost += price * units
            backlog += messages_db.waiting_count(conn, name)
    first = cfg.account(next(iter(by_account), route.lists[0][1][0]))
    return DryRun(
        account=first.name,
        channel=first.channel,
        recipients=len(checked.rows),
        invalid=checked.invalid,
        duplicates=checked.duplicates,
        suppressed=suppressed,
        segments=dict(sorted(segments.items())),
        cost=round(cost, 6) if priced else None,
        unpriced=unpriced,
        backlog=backlog,
        eta=None,
        problems=checked.problems[:1000],
        problems_total=len(checked.problems),
        route=route.name,
    )
