"""Routes: the route of a job and of its messages, and the attempts a routed message made.

Revision ID: 0009
Revises: 0007
Create Date: 2026-11-30

A routed message keeps ``account`` as its current assignment, so claims are unchanged;
failover moves it to the route's next account and writes an ``attempts`` row for the account
it left, in one transaction. NULL ``route``: the job named an account (every earlier row).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("route", sa.String(length=100), nullable=True))
    with op.batch_alter_table("messages") as batch:
        batch.add_column(sa.Column("route", sa.String(length=100), nullable=True))
    op.create_table(
        "attempts",
        sa.Column("seq", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("message_id", sa.String(length=50), nullable=False),
        sa.Column("account", sa.String(length=100), nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("error_code", sa.String(length=64), nullable=True),
        sa.Column("error_text", sa.String(length=1000), nullable=True),
    )
    op.create_index("ix_attempts_message", "attempts", ["message_id"])


def downgrade() -> None:
    op.drop_index("ix_attempts_message", table_name="attempts")
    op.drop_table("attempts")
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("route")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("route")
