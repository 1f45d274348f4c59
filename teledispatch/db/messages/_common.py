"""What the modules of this package share: the column shorthand, the logger, the reconcile
delay."""

from __future__ import annotations

import logging

from teledispatch.db.tables import messages_table

m = messages_table.c
log = logging.getLogger("teledispatch.repo")

#: An ambiguous message is first asked about this long after the attempt.
RECONCILE_AFTER_S = 2.0
