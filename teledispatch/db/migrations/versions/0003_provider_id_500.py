"""Provider ids up to 500 characters.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24

A Volcengine VMS id is ``<TaskOpenId>:<phone>`` (a TaskOpenId may have 200 characters), an
AXN ``SubId`` is kept up to 200 and USpeedo's ambiguous answers keep their session ids joined
up to 500: at 100 characters PostgreSQL refused the whole batch's outcomes, and cutting the id
short would break receipts and lookups. PostgreSQL widens a ``VARCHAR`` in place (no rewrite,
indexes kept). SQLite does not enforce lengths, but the declared type is part of the schema the
models are checked against, so there the table is rebuilt (batch mode keeps its indexes,
partial ones included): a one-time copy of the table.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.alter_column(
            "provider_id",
            type_=sa.String(length=500),
            existing_type=sa.String(length=100),
            existing_nullable=True,
        )


def downgrade() -> None:
    # Ids longer than the old width would not fit: they are cut, as the old release would have
    # been unable to store them at all.
    op.execute(
        "UPDATE messages SET provider_id = substr(provider_id, 1, 100) "
        "WHERE length(provider_id) > 100"
    )
    with op.batch_alter_table("messages") as batch:
        batch.alter_column(
            "provider_id",
            type_=sa.String(length=100),
            existing_type=sa.String(length=500),
            existing_nullable=True,
        )
