"""Opt-outs (a suppression list per account and a global one) and a job's quiet hours.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30

``optouts`` is keyed by ``(account, phone)`` (``account = '*'``: the global list) so that both
the producer's check of a part and the claim's check of a batch are index lookups, however
long the list grows. ``jobs.quiet_hours`` keeps the window resolved at enqueue, which the
worker re-checks when it claims (a retry may come due at night).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "optouts",
        sa.Column("account", sa.String(length=100), nullable=False),
        sa.Column("phone", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("account", "phone"),
    )
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("quiet_hours", sa.String(length=11), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("quiet_hours")
    op.drop_table("optouts")
