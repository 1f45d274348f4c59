"""Leaner ``events`` indexes: no unique ``event_id``, ``ix_events_state`` partial.

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-30

Every event row is inserted once and updated once (delivered), and a state change is never
a HOT update, so each index costs two insertions per event on the webhook hot path. The
unique index on ``event_id`` (a random uuid, nobody looks an event up by it; it is unique by
construction) is dropped, and ``ix_events_state`` keeps only pending and dead rows, the only
ones the drain, ``/metrics`` and the dead-letter commands ask it for.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_STATE_WHERE = sa.text("state IN ('pending', 'dead')")
#: Names the unnamed unique constraint of 0006 when SQLite's table is reflected and rebuilt.
_NAMING = {"uq": "uq_%(table_name)s_%(column_0_name)s"}


def upgrade() -> None:
    op.drop_index("ix_events_state", table_name="events")
    op.create_index(
        "ix_events_state",
        "events",
        ["state", "next_attempt_at"],
        postgresql_where=_STATE_WHERE,
        sqlite_where=_STATE_WHERE,
    )
    if op.get_bind().dialect.name == "postgresql":
        op.drop_constraint("events_event_id_key", "events", type_="unique")
    else:
        with op.batch_alter_table("events", naming_convention=_NAMING) as batch:
            batch.drop_constraint("uq_events_event_id", type_="unique")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.create_unique_constraint("events_event_id_key", "events", ["event_id"])
    else:
        with op.batch_alter_table("events") as batch:
            batch.create_unique_constraint("uq_events_event_id", ["event_id"])
    op.drop_index("ix_events_state", table_name="events")
    op.create_index("ix_events_state", "events", ["state", "next_attempt_at"])
