"""Initial schema: jobs and messages with every index the dispatcher and lookups use.

Revision ID: 0001
Revises:
Create Date: 2025-01-01

Identical to what ``create_schema`` created before revision 0002, so a database made that way is
stamped at this revision instead of being created again.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "jobs",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("account", sa.String(length=100), nullable=False),
        sa.Column("channel", sa.String(length=40), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("parts", sa.Integer(), nullable=False),
        sa.Column("defaults", sa.String(), nullable=False),
        sa.Column("idempotency_key", sa.String(length=200), nullable=True),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("not_before", sa.Float(), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("cancelled_at", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        # PostgreSQL's own name for the unnamed constraint create_schema makes.
        sa.UniqueConstraint("idempotency_key", name="jobs_idempotency_key_key"),
    )
    op.create_table(
        "messages",
        sa.Column("id", sa.String(length=50), nullable=False),
        sa.Column("job_id", sa.String(length=40), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("account", sa.String(length=100), nullable=False),
        sa.Column("channel", sa.String(length=40), nullable=False),
        sa.Column("phone", sa.String(length=32), nullable=False),
        sa.Column("group_key", sa.String(length=200), nullable=False),
        sa.Column("payload", sa.String(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("due_at", sa.Float(), nullable=False),
        sa.Column("lease_until", sa.Float(), nullable=True),
        sa.Column("claim_token", sa.String(length=40), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("provider_id", sa.String(length=100), nullable=True),
        sa.Column("error_code", sa.String(length=64), nullable=True),
        sa.Column("error_text", sa.String(length=1000), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.Column("sent_at", sa.Float(), nullable=True),
        sa.Column("final_at", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    # The dispatcher's claim: due messages of one account.
    op.create_index("ix_messages_claim", "messages", ["account", "status", "due_at"])
    # Job status counts (GROUP BY status) and job message pages.
    op.create_index("ix_messages_job_status", "messages", ["job_id", "status"])
    # The sweep: expired leases.
    op.create_index("ix_messages_lease", "messages", ["status", "lease_until"])
    # Lookups by recipient and by provider message id (delivery receipts too).
    op.create_index("ix_messages_phone", "messages", ["phone"])
    op.create_index("ix_messages_provider_id", "messages", ["provider_id"])


def downgrade() -> None:
    op.drop_table("messages")
    op.drop_table("jobs")
