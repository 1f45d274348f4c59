"""A job's messages in id order: ``(job_id, id)``.

Revision ID: 0012
Revises: 0007
Create Date: 2026-11-30

Exports and the API's message pages read a job's rows in id order after a key (``job_id = ?
AND id > ? ORDER BY id LIMIT n``). Through ``(job_id, status)`` every page read and sorted
all of the job's rows, so a 1,000,000-row export cost quadratic time in the server; this
index answers each page with a range scan that stops after ``n`` rows.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_messages_job_id", "messages", ["job_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_messages_job_id", table_name="messages")
