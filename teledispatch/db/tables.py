"""The tables: the source of truth for every job and every recipient's outcome.

Both roles use them: the producer writes a job's row and its recipients' rows and reads
outcomes back (lookups), the worker claims recipients and writes their outcomes. The
statements live in one module per table (:mod:`teledispatch.db.jobs`,
:mod:`teledispatch.db.messages`); engines in :mod:`teledispatch.db.engine`.

Times are stored as epoch seconds (UTC, float): the dispatcher compares ``due_at`` on every
claim and the sweep ``lease_until``, and floats compare the same way on SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeAlias

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from teledispatch.channels.registry import polled_channels
from teledispatch.statuses import CLAIMABLE, DEFERRED, QUEUED, STATUSES, UNKNOWN

#: Every table; what Alembic compares the migrations with (``db/migrations/env.py``).
metadata = sa.MetaData()


def required(name: str, type_: sa.types.TypeEngine[Any], **kw: Any) -> sa.Column[Any]:
    """A NOT NULL column; ``default`` (Python side) fills it when an INSERT leaves it out."""
    return sa.Column(name, type_, nullable=False, **kw)


def optional(name: str, type_: sa.types.TypeEngine[Any], **kw: Any) -> sa.Column[Any]:
    """A NULL-able column (NULL when an INSERT leaves it out)."""
    return sa.Column(name, type_, nullable=True, **kw)


#: Each partial index's predicate on PostgreSQL, by index name. They are given to the indexes
#: only when PostgreSQL DDL is made or compared (:func:`add_postgresql_options`): a
#: ``postgresql_where=`` in ``sa.Index(...)`` makes SQLAlchemy import the PostgreSQL dialect
#: to check the argument (~40 ms), in every process that imports the tables, a CLI call on
#: SQLite included.
_POSTGRESQL_WHERE: dict[str, sa.TextClause] = {}


def partial_index(
    name: str, *columns: str, where: sa.TextClause, sqlite: bool = True, **kw: Any
) -> sa.Index:
    """An index of the rows matching ``where``: on PostgreSQL always, on SQLite unless
    ``sqlite`` is false (a full index there)."""
    _POSTGRESQL_WHERE[name] = where
    if sqlite:
        kw["sqlite_where"] = where
    return sa.Index(name, *columns, **kw)


def add_postgresql_options() -> None:
    """Give the partial indexes their PostgreSQL predicates (idempotent). Done before any
    ``CREATE`` on PostgreSQL (an event on :data:`metadata`) and by the migrations' ``env.py``
    (autogenerate); nothing else reads them."""
    for table in metadata.tables.values():
        for index in table.indexes:
            where = _POSTGRESQL_WHERE.get(str(index.name))
            if where is not None:
                index.dialect_kwargs["postgresql_where"] = where


def _before_create(_target: sa.MetaData, connection: sa.Connection, **_kw: Any) -> None:
    if connection.dialect.name == "postgresql":
        add_postgresql_options()


sa.event.listen(metadata, "before_create", _before_create)


jobs_table = sa.Table(
    "jobs",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    required("account", sa.String(100)),
    required("channel", sa.String(40)),
    #: Recipients in the job; fewer rows exist while a big job is still being stored.
    required("total", sa.Integer()),
    #: Parts of :data:`~teledispatch.producer.submit.PART_SIZE` rows the job is stored in; an
    #: enqueue repeated with the same idempotency key stores the ones that are missing.
    required("parts", sa.Integer(), default=0),
    #: Job-wide fields, for display; each message's payload already has them merged in.
    required("defaults", sa.String(), default="{}"),
    optional("idempotency_key", sa.String(200), unique=True),
    #: sha256 of the validated job: the same key with other content is refused.
    required("content_hash", sa.String(64)),
    optional("not_before", sa.Float()),
    required("created_at", sa.Float()),
    optional("cancelled_at", sa.Float()),
    #: Lane of its messages: 0 high, 1 normal, 2 low (see ``teledispatch.priorities``).
    required("priority", sa.Integer(), server_default="1", default=1),
    #: A message not sent by then becomes ``expired`` (epoch s); None: never.
    optional("expires_at", sa.Float()),
    #: Its share of its lane's rate relative to the lane's other active jobs (see
    #: ``teledispatch.scheduling``).
    required("weight", sa.Float(), server_default="1", default=1.0),
    #: Where status events of this job are POSTed (the job's own or its account's default);
    #: NULL: no events are written at all.
    optional("callback_url", sa.String(2000)),
    #: When the ``job.done`` event was written: set once, so the event is written once.
    optional("done_at", sa.Float()),
    #: The quiet hours in force for its messages (``"21:00-08:00"``, resolved at enqueue from
    #: the job and its account; see ``teledispatch.quiet_hours``); NULL: none, or a ``high``
    #: lane job, which quiet hours never hold.
    optional("quiet_hours", sa.String(11)),
    #: The route the job named (``teledispatch.routes``); ``account`` is then its first
    #: member. NULL: the job named an account.
    optional("route", sa.String(100)),
    # Jobs whose ``job.done`` webhook event is still to come: few, and looked at every
    # second by the webhook drain.
    partial_index(
        "ix_jobs_open_callback",
        "created_at",
        where=sa.text("callback_url IS NOT NULL AND done_at IS NULL"),
    ),
    # The console's job list: newest first, of every account or of one.
    sa.Index("ix_jobs_created", "created_at"),
    sa.Index("ix_jobs_account_created", "account", "created_at"),
)


#: Statuses the dispatcher, the sweep and reconciliation look for by account and due time. The
#: claim index holds only these: a message that reaches ``sent`` (or any terminal status)
#: leaves it, so the outcome write inserts one index entry fewer, and the index stays as small
#: as the backlog instead of growing with every message ever sent.
INDEXED_STATUSES = (QUEUED, DEFERRED, UNKNOWN)
#: Channels whose delivery receipts are polled (worker/receipts.py): only their ``sent``
#: messages are indexed for the poll. Push-receipt channels (NXCloud DR, Volcengine call
#: records) are settled by provider id and need no such entry.
POLLED_CHANNELS = polled_channels()


def _sql_string(value: str) -> str:
    # str(): a Status's repr is "<Status.QUEUED: 'queued'>"; the words need no escaping.
    return f"'{value!s}'"


def _in_sql(column: str, values: Sequence[str]) -> sa.TextClause:
    return sa.text(f"{column} IN ({', '.join(_sql_string(v) for v in values)})")


_CLAIMABLE_WHERE = _in_sql("status", INDEXED_STATUSES)
_PROVIDER_ID_WHERE = sa.text("provider_id IS NOT NULL")
_EXPIRY_WHERE = sa.text("expires_at IS NOT NULL AND status IN ('queued', 'deferred')")
# Built as the claim's held-rows check writes its statuses: SQLite uses a partial index only
# for a query whose terms match the index's text.
_HELD_WHERE = sa.text(f"hold_until IS NOT NULL AND {_in_sql('status', CLAIMABLE).text}")
_LEGACY_WHERE = sa.text("status = 'sending' AND lease_until IS NOT NULL")
_POLL_WHERE = sa.text(
    f"{_in_sql('channel', POLLED_CHANNELS).text} AND status IN ('sent', 'unknown') "
    "AND provider_id IS NOT NULL"
)


def literal_status(*statuses: str) -> Any:
    """Statuses as SQL literals instead of bound parameters, for queries that must use a
    partial index: a planner can only match ``status IN ('queued', …)`` against a value it
    sees when planning (SQLite never sees bound values; a PostgreSQL generic plan neither)."""
    for s in statuses:
        if s not in STATUSES:
            raise ValueError(f"unknown status {s!r}")
    return [sa.literal_column(_sql_string(s)) for s in statuses]


messages_table = sa.Table(
    "messages",
    metadata,
    #: ``<job id>-<index>``: also the ``sysMessageId`` NXCloud echoes back as ``messageid``.
    sa.Column("id", sa.String(50), primary_key=True),
    required("job_id", sa.String(40)),
    required("seq", sa.Integer()),
    required("account", sa.String(100)),
    required("channel", sa.String(40)),
    required("phone", sa.String(32)),
    #: Messages with different keys never share a request (VMS TaskOpenId); "" otherwise.
    required("group_key", sa.String(200), default=""),
    #: The validated recipient fields (job defaults merged in), JSON.
    required("payload", sa.String()),
    required("status", sa.String(16), default=QUEUED.value),
    #: When it may be sent, and its place in its job's order: a row handed back unsent (no
    #: rate slot) keeps it and waits for ``hold_until`` instead, so it is not put behind
    #: rows that came after it.
    required("due_at", sa.Float()),
    #: Not claimed before this (epoch s): a handed-back row's wait; None: no wait.
    optional("hold_until", sa.Float()),
    #: Its job's lane: 0 high, 1 normal, 2 low; claims serve the lower number first.
    required("priority", sa.Integer(), server_default="1", default=1),
    #: Not sent by then: ``expired`` (epoch s); None: never.
    optional("expires_at", sa.Float()),
    #: Written only by the previous release's workers (a claim's lease is now its ``batches``
    #: row); the sweep still reclaims their lost claims from it during a rolling upgrade.
    optional("lease_until", sa.Float()),
    #: Set on claim; an outcome is written only by the holder of the current claim.
    optional("claim_token", sa.String(40)),
    required("attempts", sa.Integer(), default=0),
    optional("provider_id", sa.String(500)),
    optional("error_code", sa.String(64)),
    optional("error_text", sa.String(1000)),
    required("created_at", sa.Float()),
    required("updated_at", sa.Float()),
    optional("sent_at", sa.Float()),
    #: When a delivery receipt or call record arrived.
    optional("final_at", sa.Float()),
    #: SMS text encoding (``gsm7``/``ucs2``) and parts billed; NULL for channels without text.
    optional("encoding", sa.String(8)),
    optional("segments", sa.Integer()),
    #: The finished message this row sends again (``teledispatch retry``); None for a
    #: recipient's first message.
    optional("retry_of", sa.String(50)),
    #: The route of a routed job's message: ``account`` is then its current assignment, which
    #: failover moves on (``db/messages/failover.py``). NULL: the job named an account.
    optional("route", sa.String(100)),
    # Every UPDATE that changes ``status`` inserts a new entry into every index whose
    # predicate the new row satisfies (an indexed column changed, so it is never HOT):
    # partial indexes are what keeps a claim and an outcome cheap. The sweep finds lost
    # batches in ``batches``.
    # Partial on PostgreSQL only, whose planner proves ``status = 'queued'`` implies the
    # index's ``status IN (…)``. SQLite uses a partial index only when the query repeats
    # its WHERE term verbatim: there every claim, due check and reconcile scanned the
    # table and sorted it (25 ms per claim at 60,000 rows, under the write lock).
    # ``priority`` and ``job_id`` before ``due_at``: a claim lists a lane's jobs (a skip
    # scan over job_id) and takes each job's share in its own order (due_at, then seq),
    # each an equality prefix and a range on due_at (see db.messages.claims).
    partial_index(
        "ix_messages_claim",
        "account",
        "status",
        "priority",
        "job_id",
        "due_at",
        "seq",
        where=_CLAIMABLE_WHERE,
        sqlite=False,
    ),
    # The sweep's expiry of unsent rows: only rows that have an expiry and can still
    # expire are in it (most traffic has none).
    partial_index("ix_messages_expiry", "expires_at", where=_EXPIRY_WHERE),
    # Rows handed back unsent and held for a slot: few at any time (a claim clears the hold),
    # so a claim's "does this lane have held rows?" reads a few entries. Through the claim
    # index, which has no ``hold_until``, it read every due row of the lane, each claim.
    partial_index("ix_messages_held", "account", "priority", "hold_until", where=_HELD_WHERE),
    # Claimed rows by claim token: the outcome write and the sweep find a batch's rows
    # through it. Not part of the claim index: an index scan for ``status = 'sending'``
    # there walked every dead entry left by earlier claims (the planner takes 'sending'
    # for rare), where this one is keyed by the token and only holds live claims' rows.
    partial_index("ix_messages_sending", "claim_token", where=sa.text("status = 'sending'")),
    # Claims of the release before 0002 (lease on the message, no batch row), which the
    # sweep still reclaims during a rolling upgrade: empty otherwise (new claims and every
    # outcome clear ``lease_until``), so it costs nothing, where without it every sweep
    # walked the whole sending index (~100 ms each at 1,000,000 messages).
    partial_index("ix_messages_legacy_lease", "account", "lease_until", where=_LEGACY_WHERE),
    sa.Index("ix_messages_job_status", "job_id", "status"),
    # A job's rows in id order (exports, message pages): each page a range scan.
    sa.Index("ix_messages_job_id", "job_id", "id"),
    sa.Index("ix_messages_phone", "phone"),
    partial_index("ix_messages_provider_id", "provider_id", where=_PROVIDER_ID_WHERE),
    partial_index("ix_messages_receipt_poll", "account", "due_at", where=_POLL_WHERE),
    # A message is retried at most once (db.messages.retry): the retry's idempotency.
    partial_index(
        "ix_messages_retry_of",
        "retry_of",
        unique=True,
        where=sa.text("retry_of IS NOT NULL"),
    ),
)


#: One request's worth of claimed messages (one claim, one group key): its lease and
#: whether it departed, recorded once per request instead of once per message.
#:
#: The worker marks departure by a compare-and-set on this row just before the request
#: leaves; the sweep deletes expired rows and, from ``departed_at``, requeues the batch's
#: messages or hands them to reconciliation. Both write this one row, so the database's row
#: lock (PostgreSQL) or write lock (SQLite) decides which came first: a departure either
#: happened before the reclaim (the sweep sees it) or fails (the worker does not send).
batches_table = sa.Table(
    "batches",
    metadata,
    sa.Column("claim_token", sa.String(40), primary_key=True),
    sa.Column("group_key", sa.String(200), primary_key=True, default=""),
    required("account", sa.String(100)),
    required("lease_until", sa.Float()),
    #: Set just before the request leaves; cleared if the departure gate then refuses it.
    optional("departed_at", sa.Float()),
    sa.Index("ix_batches_lease", "account", "lease_until"),
)


#: The outbox: one status change of a message of a job with a ``callback_url``, written
#: in the transaction of the change and POSTed later by the webhook delivery task.
#:
#: ``seq`` (autoincrement) is the delivery order: per endpoint in ``seq`` order, so a
#: message's events arrive in the order its status changed.
events_table = sa.Table(
    "events",
    metadata,
    sa.Column("seq", sa.Integer(), primary_key=True),
    #: The id receivers deduplicate by: a random uuid, unique by construction and never
    #: looked up, so not indexed (an index costs every event two insertions: migration 0013).
    required("event_id", sa.String(40)),
    required("account", sa.String(100)),
    #: sha256 of ``url`` (hex, 32): the delivery task's argument, which must not carry a URL
    #: that may hold a token.
    required("endpoint", sa.String(32)),
    required("url", sa.String(2000)),
    required("type", sa.String(40)),
    required("job_id", sa.String(40)),
    optional("message_id", sa.String(50)),
    optional("phone", sa.String(32)),
    optional("status", sa.String(16)),
    optional("provider_id", sa.String(500)),
    optional("error_code", sa.String(64)),
    optional("error_text", sa.String(1000)),
    required("occurred_at", sa.Float()),
    #: ``pending``, ``delivered`` or ``dead``.
    required("state", sa.String(16), default="pending"),
    required("attempts", sa.Integer(), default=0),
    required("next_attempt_at", sa.Float(), default=0.0),
    #: The first failed attempt: the retry window is counted from it.
    optional("first_failed_at", sa.Float()),
    optional("delivered_at", sa.Float()),
    optional("last_error", sa.String(200)),
    # The drain: an endpoint's pending events in order. Partial, so delivered rows (all
    # but the backlog) cost the index nothing after their state changes.
    partial_index("ix_events_pending", "endpoint", "seq", where=sa.text("state = 'pending'")),
    # Pending and dead rows only: the drain, /metrics and the dead letters ask for nothing else.
    partial_index(
        "ix_events_state",
        "state",
        "next_attempt_at",
        where=sa.text("state IN ('pending', 'dead')"),
    ),
    sa.Index("ix_events_job", "job_id"),
)


#: The global suppression list's ``account``: a name no configured account can have.
GLOBAL_OPTOUT = "*"


#: A recipient who opted out: of one account's sends, or (``account = '*'``) of all.
#:
#: The primary key ``(account, phone)`` is the index every check walks: the producer asks it
#: once per part of a job, the claim once per claim.
optouts_table = sa.Table(
    "optouts",
    metadata,
    sa.Column("account", sa.String(100), primary_key=True),
    #: E.164, as messages store it.
    sa.Column("phone", sa.String(32), primary_key=True),
    required("created_at", sa.Float()),
)


#: An account a routed message left, and why: lookup shows a message's attempts (these,
#: then its current account and status). Written with the move, in its transaction.
attempts_table = sa.Table(
    "attempts",
    metadata,
    sa.Column("seq", sa.Integer(), primary_key=True),
    required("message_id", sa.String(50)),
    required("account", sa.String(100)),
    required("at", sa.Float()),
    #: ``paused`` (its circuit opened) or ``refused`` (a code the route moves on for).
    required("outcome", sa.String(16)),
    optional("error_code", sa.String(64)),
    optional("error_text", sa.String(1000)),
    sa.Index("ix_attempts_message", "message_id"),
)


#: A result row of any columns, as the data-access modules return them.
AnyRow: TypeAlias = sa.Row[*tuple[Any, ...]]


def create_schema(engine: Engine) -> None:
    metadata.create_all(engine)
