"""Each SMS's encoding and segment count, computed at enqueue.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30

Providers bill per segment: storing the count with the message lets status and export show
what a job costs without re-deriving it from the payload. NULL for channels that send no text
of their own (templates held by the provider, voice, number binding) and for rows stored
before this revision.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.add_column(sa.Column("encoding", sa.String(length=8), nullable=True))
        batch.add_column(sa.Column("segments", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("segments")
        batch.drop_column("encoding")
