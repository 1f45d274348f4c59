"""What the modules of this package share: the column shorthand, the logger, the reconcile
delay, the opted-out error code."""

from __future__ import annotations

import logging
from typing import Any

import sqlalchemy as sa

from teledispatch.db.tables import messages_table
from teledispatch.statuses import ACTIVE_STATUSES, UNKNOWN, UNRECONCILED

m = messages_table.c
log = logging.getLogger("teledispatch.repo")

#: An ambiguous message is first asked about this long after the attempt.
RECONCILE_AFTER_S = 2.0
#: ``error_code`` of a message whose recipient is on a suppression list (written by the
#: claim, and by the producer's screening, which must not import the claim for it).
OPTED_OUT_CODE = "opted_out"


def still_working() -> Any:
    """A message the dispatcher may still write: waiting, claimed, or ``unknown`` and still
    being reconciled. A job with none is finished; retention never deletes one."""
    return sa.or_(
        m.status.in_(sorted(ACTIVE_STATUSES)),
        sa.and_(m.status == UNKNOWN, sa.or_(m.error_code.is_(None), m.error_code != UNRECONCILED)),
    )
