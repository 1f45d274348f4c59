"""Priority lanes and expiry: ``priority`` and ``expires_at`` on jobs and messages.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30

Claims serve high before normal before low, one lane at a time, so the claim index gains
``priority`` between ``status`` and ``due_at``. Existing rows are ``normal`` (1) and never
expire. The sweep finds expired unsent rows through a partial index holding only rows that
have an expiry and are still queued or deferred.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Spelled out rather than imported from teledispatch.db.tables (see 0002).
CLAIMABLE_WHERE = "status IN ('queued', 'deferred', 'unknown')"
EXPIRY_WHERE = "expires_at IS NOT NULL AND status IN ('queued', 'deferred')"


def upgrade() -> None:
    for table in ("jobs", "messages"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(
                sa.Column("priority", sa.Integer(), nullable=False, server_default="1")
            )
            batch.add_column(sa.Column("expires_at", sa.Float(), nullable=True))
    op.drop_index("ix_messages_claim", table_name="messages")
    op.create_index(
        "ix_messages_claim",
        "messages",
        ["account", "status", "priority", "due_at"],
        postgresql_where=sa.text(CLAIMABLE_WHERE),
    )
    where = sa.text(EXPIRY_WHERE)
    op.create_index(
        "ix_messages_expiry",
        "messages",
        ["expires_at"],
        postgresql_where=where,
        sqlite_where=where,
    )


def downgrade() -> None:
    op.drop_index("ix_messages_expiry", table_name="messages")
    op.drop_index("ix_messages_claim", table_name="messages")
    op.create_index(
        "ix_messages_claim",
        "messages",
        ["account", "status", "due_at"],
        postgresql_where=sa.text(CLAIMABLE_WHERE),
    )
    for table in ("messages", "jobs"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("expires_at")
            batch.drop_column("priority")
