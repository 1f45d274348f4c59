"""``messages.retry_of``: a retried message is a new row naming the one it retries; the job
list's indexes by creation time.

Revision ID: 0010
Revises: 0007
Create Date: 2026-11-30

A retry never rewrites a finished message: the original keeps its status, error and
provider id (what happened stays on record), and the new attempt is a row of its own in the
same job. The unique index is the retry's idempotency: a message is retried at most once, so
retrying a job twice sends nothing twice. The console lists jobs newest first, of every account
or of one: ``ix_jobs_created`` and ``ix_jobs_account_created``.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Spelled out rather than imported from teledispatch.db.tables (see 0002).
RETRY_WHERE = "retry_of IS NOT NULL"


def upgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.add_column(sa.Column("retry_of", sa.String(length=50), nullable=True))
    where = sa.text(RETRY_WHERE)
    op.create_index(
        "ix_messages_retry_of",
        "messages",
        ["retry_of"],
        unique=True,
        postgresql_where=where,
        sqlite_where=where,
    )
    op.create_index("ix_jobs_created", "jobs", ["created_at"])
    op.create_index("ix_jobs_account_created", "jobs", ["account", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_jobs_account_created", table_name="jobs")
    op.drop_index("ix_jobs_created", table_name="jobs")
    op.drop_index("ix_messages_retry_of", table_name="messages")
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("retry_of")
