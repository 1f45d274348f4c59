"""Fair share between jobs: ``jobs.weight``, ``messages.hold_until``, the claim index by job.

Revision ID: 0011
Revises: 0007
Create Date: 2026-11-30

A claim now takes each active job's share of a lane, so the claim index gains ``job_id``
(to list a lane's jobs and scan each one) and ``seq`` (a job's own order). A row handed back
unsent keeps its ``due_at`` (its place) and waits for ``hold_until``. Existing jobs weigh 1.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Spelled out rather than imported from teledispatch.db.tables (see 0002).
CLAIMABLE_WHERE = "status IN ('queued', 'deferred', 'unknown')"


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("weight", sa.Float(), nullable=False, server_default="1"))
    with op.batch_alter_table("messages") as batch:
        batch.add_column(sa.Column("hold_until", sa.Float(), nullable=True))
    op.drop_index("ix_messages_claim", table_name="messages")
    op.create_index(
        "ix_messages_claim",
        "messages",
        ["account", "status", "priority", "job_id", "due_at", "seq"],
        postgresql_where=sa.text(CLAIMABLE_WHERE),
    )


def downgrade() -> None:
    op.drop_index("ix_messages_claim", table_name="messages")
    op.create_index(
        "ix_messages_claim",
        "messages",
        ["account", "status", "priority", "due_at"],
        postgresql_where=sa.text(CLAIMABLE_WHERE),
    )
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("hold_until")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("weight")
