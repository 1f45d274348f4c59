"""``teledispatch send --dry-run`` of an account's job without SQLAlchemy or pydantic, when it
can.

A dry run validates every recipient and reads two things: which recipients are on the
suppression lists, and the account's backlog. Importing SQLAlchemy and the account models for
that cost more than all the rest. Here, as for ``status`` and ``lookup``
(:mod:`teledispatch.quick_reads`), the config file gets the quick check of
:mod:`teledispatch.config_quick`, the account is its model-free view, the database is opened
with its own driver and checked to be at the newest revision, and the tally and the report
are :mod:`teledispatch.producer.dry_tally`'s, as on the SQLAlchemy path.

:func:`dry_run` returns None, before any recipient is read, whenever it cannot be sure to
answer as that path would: a config file only the full loader can judge, an account the file
does not hold (the full path words that error), a URL the driver is not given the same way,
a database not yet created or behind the migrations, any database error on connecting. Once
recipients are being read (a CSV's rows cannot be read twice), a database error is raised as
:class:`teledispatch.db.plain.Failed`, which the CLI reports in the very words it uses for
the SQLAlchemy error wrapping the same driver error.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from teledispatch.config_quick import QuickConfig, quick_config
from teledispatch.db import plain
from teledispatch.db.messages import plain as messages_plain
from teledispatch.db.optouts import plain as optouts_plain
from teledispatch.db.revision import STORED_REVISION_SQL, is_head
from teledispatch.producer.dry_tally import DryRun, account_report


class _NotHere(Exception):
    """The SQLAlchemy path must answer (raised before any recipient is read)."""


class PlainDryReads:
    """:class:`teledispatch.producer.dry_tally.DryReads` on a DB-API connection."""

    def __init__(self, conn: plain.Plain) -> None:
        self.conn = conn

    def suppressed_among(self, account: str, phones: Sequence[str]) -> set[str]:
        return optouts_plain.suppressed_among(self.conn, account, phones)

    def waiting_count(self, account: str) -> int:
        return messages_plain.waiting_count(self.conn, account)


def _open(url: str) -> plain.Plain:
    """A connection to a database at the newest revision; else :class:`_NotHere`."""
    try:
        conn = plain.connect(url)
        if conn is None:
            raise _NotHere
        try:
            at_head = is_head([row[0] for row in conn.rows(STORED_REVISION_SQL)])
        except BaseException:
            conn.close()
            raise
        if not at_head:
            conn.close()
            raise _NotHere
        return conn
    except Exception as exc:
        if plain.failed(exc):
            raise _NotHere from None
        raise


@contextmanager
def _reads(url: str) -> Iterator[PlainDryReads]:
    with _open(url) as conn:
        try:
            yield PlainDryReads(conn)
        except Exception as exc:
            if plain.is_dbapi_error(exc):
                raise plain.Failed(exc) from exc
            raise


def config() -> QuickConfig | None:
    """The config file's model-free view, or None (``config.settings()`` must read it)."""
    return quick_config()


def dry_run(
    account: str,
    recipients: Iterable[Mapping[str, Any]],
    *,
    defaults: Mapping[str, Any] | None = None,
    not_before: datetime | None = None,
    allow_duplicates: bool = False,
    priority: str | None = None,
    quiet_hours: str | None = None,
) -> DryRun | None:
    """As ``producer.dry_run.dry_run`` (raising the same ``ValidationFailed``), or None."""
    cfg = quick_config()
    if cfg is None or account not in cfg.tables:
        return None
    url = cfg.database_url
    try:
        return account_report(
            cfg,
            cfg.account(account),
            recipients,
            lambda: _reads(url),
            defaults=defaults,
            not_before=not_before,
            allow_duplicates=allow_duplicates,
            priority=priority,
            quiet_hours=quiet_hours,
        )
    except _NotHere:
        return None
