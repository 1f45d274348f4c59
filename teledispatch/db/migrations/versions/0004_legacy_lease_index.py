"""An index for the sweep's reclaim of claims made before 0002.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24

0002 moved leases to ``batches`` and dropped ``ix_messages_lease``, but the sweep still looks
for claims of the previous release by ``messages.lease_until`` (a rolling upgrade), every
second: with no index that walked every entry of the sending index and its rows, ~100 ms per
sweep at 1,000,000 messages, most of the server's time. This partial index holds only such
claims, so it is empty once the upgrade is over and no write pays for it.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Spelled out rather than imported from teledispatch.db.tables (see 0002).
LEGACY_WHERE = "status = 'sending' AND lease_until IS NOT NULL"


def upgrade() -> None:
    where = sa.text(LEGACY_WHERE)
    op.create_index(
        "ix_messages_legacy_lease",
        "messages",
        ["account", "lease_until"],
        postgresql_where=where,
        sqlite_where=where,
    )


def downgrade() -> None:
    op.drop_index("ix_messages_legacy_lease", table_name="messages")
