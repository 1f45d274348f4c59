"""Batches: a claim's lease and departure on one row per request; partial message indexes.

Revision ID: 0002
Revises: 0001
Create Date: 2025-06-01

Departure used to be an UPDATE of every message of a request (and the lease a column of each);
it is now one compare-and-set on a ``batches`` row, which the sweep deletes when the lease
expires. Claims in flight during the upgrade get their batch row here (departed if any of
their messages had ``sent_at`` set, the old departure mark), so the sweep treats them alike.

The sweep no longer scans messages by lease, so ``ix_messages_lease`` goes. The claim and
provider-id indexes become partial (waiting statuses; non-NULL ids), and claimed rows are
found by claim token through a partial index of their own: a status change inserts
an entry into every index whose predicate the new row satisfies, and most of them need not.
The USpeedo receipt poll, which read ``sent`` rows through the claim index, gets its own
partial index.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Spelled out rather than imported from teledispatch.db.tables: a migration must keep building the
# schema of its own revision whatever the models say later.
CLAIM_WHERE = "status IN ('queued', 'deferred', 'unknown')"
SENDING_WHERE = "status = 'sending'"
PROVIDER_ID_WHERE = "provider_id IS NOT NULL"
POLL_WHERE = (
    "channel IN ('uspeedo.sms') AND status IN ('sent', 'unknown') AND provider_id IS NOT NULL"
)


def _where(clause: str) -> dict[str, Any]:
    return {"postgresql_where": sa.text(clause), "sqlite_where": sa.text(clause)}


def upgrade() -> None:
    op.create_table(
        "batches",
        sa.Column("claim_token", sa.String(length=40), nullable=False),
        sa.Column("group_key", sa.String(length=200), nullable=False),
        sa.Column("account", sa.String(length=100), nullable=False),
        sa.Column("lease_until", sa.Float(), nullable=False),
        sa.Column("departed_at", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("claim_token", "group_key"),
    )
    # The sweep: expired leases of one account.
    op.create_index("ix_batches_lease", "batches", ["account", "lease_until"])
    # Claims in flight: one batch row per (claim, group), as the new claim writes them.
    op.execute(
        "INSERT INTO batches (claim_token, group_key, account, lease_until, departed_at) "
        "SELECT claim_token, group_key, MIN(account), COALESCE(MAX(lease_until), 0), "
        "MAX(sent_at) FROM messages WHERE status = 'sending' AND claim_token IS NOT NULL "
        "GROUP BY claim_token, group_key"
    )
    op.execute(
        "UPDATE messages SET lease_until = NULL "
        "WHERE status = 'sending' AND claim_token IS NOT NULL"
    )
    op.drop_index("ix_messages_lease", table_name="messages")
    op.drop_index("ix_messages_claim", table_name="messages")
    # Partial on PostgreSQL only: SQLite uses a partial index only when the query repeats its
    # WHERE verbatim, so ``status = 'queued'`` would scan the table (see teledispatch/db/tables.py).
    op.create_index(
        "ix_messages_claim",
        "messages",
        ["account", "status", "due_at"],
        postgresql_where=sa.text(CLAIM_WHERE),
    )
    op.create_index("ix_messages_sending", "messages", ["claim_token"], **_where(SENDING_WHERE))
    op.drop_index("ix_messages_provider_id", table_name="messages")
    op.create_index(
        "ix_messages_provider_id", "messages", ["provider_id"], **_where(PROVIDER_ID_WHERE)
    )
    op.create_index(
        "ix_messages_receipt_poll", "messages", ["account", "due_at"], **_where(POLL_WHERE)
    )


def downgrade() -> None:
    op.drop_index("ix_messages_receipt_poll", table_name="messages")
    op.drop_index("ix_messages_sending", table_name="messages")
    op.drop_index("ix_messages_provider_id", table_name="messages")
    op.create_index("ix_messages_provider_id", "messages", ["provider_id"])
    op.drop_index("ix_messages_claim", table_name="messages")
    op.create_index("ix_messages_claim", "messages", ["account", "status", "due_at"])
    op.create_index("ix_messages_lease", "messages", ["status", "lease_until"])
    # Claims in flight go back to the per-message lease and departure mark the previous
    # release reads (its sweep finds them by lease, its departure check by sent_at).
    op.execute(
        "UPDATE messages SET "
        "lease_until = COALESCE((SELECT b.lease_until FROM batches b WHERE b.claim_token = "
        "messages.claim_token AND b.group_key = messages.group_key), 0), "
        "sent_at = (SELECT b.departed_at FROM batches b WHERE b.claim_token = "
        "messages.claim_token AND b.group_key = messages.group_key) "
        "WHERE status = 'sending' AND claim_token IS NOT NULL"
    )
    op.drop_table("batches")
