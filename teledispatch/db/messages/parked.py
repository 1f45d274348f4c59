"""The rows of a parked batch: claimed earlier, read again when their rate slot comes.

A batch whose slot is ahead is not held in a worker process (``worker/ratelimit/booking.py``):
its rows stay ``sending`` under their claim token and lease, and the process that sends them
reads them back here, through the partial index on ``claim_token`` of ``sending`` rows.
"""

from __future__ import annotations

from itertools import starmap

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from teledispatch.db.messages._common import m
from teledispatch.db.messages.claims import Claimed
from teledispatch.db.tables import literal_status
from teledispatch.statuses import SENDING


def claimed_rows(engine: Engine, token: str, group_key: str) -> list[Claimed]:
    """The rows still ``sending`` under ``token`` in ``group_key``, in claim order (by id:
    ``<job>-<index>``, the order a job's rows were claimed in); empty if the sweep took them."""
    (sending,) = literal_status(SENDING)  # a literal, so the partial index applies
    stmt = (
        sa.select(m.id, m.phone, m.group_key, m.payload, m.attempts, m.job_id, m.expires_at)
        .where(m.claim_token == token, m.status == sending)
        .where(m.group_key == group_key)
        .order_by(m.id)
    )
    with engine.connect() as conn:
        return list(starmap(Claimed, conn.execute(stmt).all()))
