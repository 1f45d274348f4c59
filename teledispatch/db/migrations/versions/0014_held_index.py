"""Held rows by account and lane: ``ix_messages_held``.

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-30

Every claim asks, per lane, whether rows are held back for a rate slot (due, with
``hold_until`` ahead). ``hold_until`` is in no index, so PostgreSQL answered it by reading
every due row of the lane: a sequential scan of the backlog on each claim of a saturated
account. Held rows are few (a claim clears the hold), so a partial index of them answers the
question from a handful of entries.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_HELD_WHERE = sa.text("hold_until IS NOT NULL AND status IN ('queued', 'deferred')")


def upgrade() -> None:
    op.create_index(
        "ix_messages_held",
        "messages",
        ["account", "priority", "hold_until"],
        postgresql_where=_HELD_WHERE,
        sqlite_where=_HELD_WHERE,
    )


def downgrade() -> None:
    op.drop_index("ix_messages_held", table_name="messages")
