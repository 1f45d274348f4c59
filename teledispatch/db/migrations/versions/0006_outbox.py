"""The webhook outbox: ``events``, and the jobs' ``callback_url`` and ``done_at``.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30

An event row is written in the transaction of the status change it reports, so a crash
between the change and its POST loses nothing; the webhook task drains the table.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Spelled out rather than imported from teledispatch.db.tables (see 0002).
PENDING_WHERE = "state = 'pending'"
OPEN_CALLBACK_WHERE = "callback_url IS NOT NULL AND done_at IS NULL"


def upgrade() -> None:
    op.add_column("jobs", sa.Column("callback_url", sa.String(length=2000), nullable=True))
    op.add_column("jobs", sa.Column("done_at", sa.Float(), nullable=True))
    open_where = sa.text(OPEN_CALLBACK_WHERE)
    op.create_index(
        "ix_jobs_open_callback",
        "jobs",
        ["created_at"],
        postgresql_where=open_where,
        sqlite_where=open_where,
    )
    op.create_table(
        "events",
        sa.Column("seq", sa.Integer(), nullable=False, autoincrement=True),
        sa.Column("event_id", sa.String(length=40), nullable=False),
        sa.Column("account", sa.String(length=100), nullable=False),
        sa.Column("endpoint", sa.String(length=32), nullable=False),
        sa.Column("url", sa.String(length=2000), nullable=False),
        sa.Column("type", sa.String(length=40), nullable=False),
        sa.Column("job_id", sa.String(length=40), nullable=False),
        sa.Column("message_id", sa.String(length=50), nullable=True),
        sa.Column("phone", sa.String(length=32), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=True),
        sa.Column("provider_id", sa.String(length=500), nullable=True),
        sa.Column("error_code", sa.String(length=64), nullable=True),
        sa.Column("error_text", sa.String(length=1000), nullable=True),
        sa.Column("occurred_at", sa.Float(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.Float(), nullable=False),
        sa.Column("first_failed_at", sa.Float(), nullable=True),
        sa.Column("delivered_at", sa.Float(), nullable=True),
        sa.Column("last_error", sa.String(length=200), nullable=True),
        sa.PrimaryKeyConstraint("seq"),
        sa.UniqueConstraint("event_id"),
    )
    where = sa.text(PENDING_WHERE)
    op.create_index(
        "ix_events_pending",
        "events",
        ["endpoint", "seq"],
        postgresql_where=where,
        sqlite_where=where,
    )
    op.create_index("ix_events_state", "events", ["state", "next_attempt_at"])
    op.create_index("ix_events_job", "events", ["job_id"])


def downgrade() -> None:
    op.drop_index("ix_events_job", table_name="events")
    op.drop_index("ix_events_state", table_name="events")
    op.drop_index("ix_events_pending", table_name="events")
    op.drop_table("events")
    op.drop_index("ix_jobs_open_callback", table_name="jobs")
    op.drop_column("jobs", "done_at")
    op.drop_column("jobs", "callback_url")
