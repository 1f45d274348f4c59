"""The claim's SQL: the lanes query (every lane's jobs and held rows in one statement) and
the take (each job's share of rows in one ``UPDATE … RETURNING``), built once per shape.

:mod:`~teledispatch.db.messages.claims` runs them in its transaction and decides the shares.
"""

from __future__ import annotations

import functools
from typing import Any

import sqlalchemy as sa

from teledispatch.db import optouts as optouts_db
from teledispatch.db.messages._common import m
from teledispatch.db.tables import literal_status, messages_table
from teledispatch.priorities import PRIORITY_ORDER
from teledispatch.statuses import CLAIMABLE, DEFERRED, QUEUED, SENDING

#: A lane's jobs listed per claim at most (a skip scan, one index probe each): more active
#: jobs than this in one lane (thousands of single OTPs at once) are served in ``job_id`` order
#: a claim at a time, each leaving once its rows are sent.
MAX_JOBS_PER_LANE = 1000

# A lane's jobs with rows of one status (a loose index scan: one probe per job, whatever their
# sizes), each with its weight, its age and its quiet hours; and whether the lane has due rows
# held back for a slot. Every lane in one round trip (a single's claim made seven before).
# Literal statuses and priorities: the partial claim index applies on PostgreSQL.
_LANE_JOBS = """j_{s}_{p}(job_id, n) AS (
  SELECT (SELECT job_id FROM messages WHERE account = :account AND status = '{s}'
          AND priority = {p} ORDER BY job_id LIMIT 1), 1
  UNION ALL
  SELECT (SELECT job_id FROM messages WHERE account = :account AND status = '{s}'
          AND priority = {p} AND job_id > j_{s}_{p}.job_id ORDER BY job_id LIMIT 1), n + 1
  FROM j_{s}_{p} WHERE j_{s}_{p}.job_id IS NOT NULL AND n < :max_jobs)"""
_LANE_DUE = """SELECT {p}, '{s}', j_{s}_{p}.job_id,
  (SELECT weight FROM jobs WHERE jobs.id = j_{s}_{p}.job_id),
  (SELECT created_at FROM jobs WHERE jobs.id = j_{s}_{p}.job_id),
  (SELECT quiet_hours FROM jobs WHERE jobs.id = j_{s}_{p}.job_id)
FROM j_{s}_{p} WHERE j_{s}_{p}.job_id IS NOT NULL"""
_LANE_HELD = """SELECT {p}, 'held', NULL, NULL, NULL, NULL WHERE EXISTS (
  SELECT 1 FROM messages WHERE account = :account AND status IN ({claimable})
  AND priority = {p} AND due_at <= :now AND hold_until > :now)"""
_LANE_PAIRS = [(s, p) for p in PRIORITY_ORDER for s in (DEFERRED, QUEUED)]
LANES_SQL = (
    "WITH RECURSIVE "
    + ", ".join(_LANE_JOBS.format(s=s, p=p) for s, p in _LANE_PAIRS)
    + " "
    + " UNION ALL ".join(
        [_LANE_DUE.format(s=s, p=p) for s, p in _LANE_PAIRS]
        + [
            _LANE_HELD.format(p=p, claimable=", ".join(f"'{c}'" for c in CLAIMABLE))
            for p in PRIORITY_ORDER
        ]
    )
)
LANES = sa.text(LANES_SQL)
#: The same in psycopg's parameter style, for the pipelined first round trip
#: (``claims._lane_rows``).
LANES_PG = (
    LANES_SQL.replace(":account", "%(account)s")
    .replace(":now", "%(now)s")
    .replace(":max_jobs", "%(max_jobs)s")
)
#: A claim's plan setting on PostgreSQL (see ``claims._lane_rows``).
NO_SORT = "SET LOCAL enable_sort = off"


def _rows_of(dialect: str, priority: int, status: str, i: int) -> Any:
    """The ``i``-th job's (``b_job{i}``) first ``b_n{i}`` due rows of one status, in its own
    order (due time, then seq)."""
    (lit,) = literal_status(status)  # a literal, so the partial claim index applies
    now = sa.bindparam("b_now", type_=sa.Float)
    pick = (
        sa.select(m.id)
        .where(m.account == sa.bindparam("b_account"), m.status == lit, m.priority == priority)
        .where(m.job_id == sa.bindparam(f"b_job{i}"), m.due_at <= now)
        .where(sa.or_(m.hold_until.is_(None), m.hold_until <= now))
        .order_by(m.due_at, m.seq)
        .limit(sa.bindparam(f"b_n{i}", type_=sa.Integer))
    )
    if dialect == "postgresql":
        # SKIP LOCKED: concurrent claimers take disjoint rows instead of queueing; found
        # again by ``ctid`` (the address just locked), a TID scan (see _take).
        pick = pick.with_only_columns(sa.literal_column("messages.ctid")).with_for_update(
            skip_locked=True
        )
    return pick


@functools.lru_cache(maxsize=256)
def take_statement(dialect: str, priority: int, status: str, jobs: int) -> Any:
    """The take of ``jobs`` jobs' rows, built once per shape: building it and its cache key
    was a third of a claim's CPU."""
    picks = [_rows_of(dialect, priority, status, i) for i in range(jobs)]
    (lit,) = literal_status(status)
    picked: Any
    if dialect == "postgresql":
        # ``= ANY(ARRAY(a) || ARRAY(b) …)``: each job's subquery runs exactly once (under
        # ``IN (…)`` the planner may re-run it per row, and each run skips the rows the
        # previous one locked, so LIMIT stops bounding the update), and FOR UPDATE is not
        # allowed in a UNION. No second status test outside: the subqueries locked the rows
        # and re-checked their WHERE on the latest version. A row someone updated (still
        # claimable) between this statement's snapshot and its lock is left for the next
        # claim, never lost.
        arrays: list[Any] = [sa.func.array(p.scalar_subquery()) for p in picks]
        # Joined pairwise, so the expression is log2(jobs) deep: a chain of 200 jobs' arrays
        # was deeper than Python's recursion limit when SQLAlchemy compiled it.
        while len(arrays) > 1:
            pairs = zip(arrays[::2], arrays[1::2], strict=False)
            arrays = [a.op("||")(b) for a, b in pairs] + arrays[len(arrays) & ~1 :]
        picked = sa.literal_column("messages.ctid") == sa.any_(arrays[0])
    else:
        union = sa.union_all(*(sa.select(p.subquery().c.id) for p in picks))
        picked = sa.and_(m.id.in_(union), m.status == lit)
    return (
        sa.update(messages_table)
        .where(picked)
        .values(
            status=SENDING,
            claim_token=sa.bindparam("b_token"),
            # The lease is the batch row's. NULL here also keeps a sweep of the
            # previous release (which reads this column) away from new claims.
            lease_until=None,
            hold_until=None,
            attempts=m.attempts + 1,
            updated_at=sa.bindparam("b_now", type_=sa.Float),
            sent_at=None,
        )
        .returning(
            m.id,
            m.phone,
            m.group_key,
            m.payload,
            m.attempts,
            m.job_id,
            m.expires_at,
            # Asked here, one index probe per row, so that the suppression step runs only
            # for a claim that found some (it was a statement on every claim).
            optouts_db.opted_out(m.account, m.phone),
        )
    )
