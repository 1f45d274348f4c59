"""Claim due messages of one account, send them in provider-sized requests, record outcomes.

* :mod:`.loop` — :func:`dispatch`, the task body: claim, admit, send, until a claim is short;
* :mod:`.admit` — the global limits' say over one claimed group (slot, rate reservation);
* :mod:`.send` — :func:`send_batch`: one request, in named steps;
* :mod:`.outcomes` — pure decisions: what each error or item answer makes of a message;
* :mod:`.common` — the :class:`Report` and giving claimed rows back undeparted.
"""

from .admit import RESERVE_AHEAD_S, Admission, admit
from .common import LEASE_MARGIN_S, Report, give_back, has_limits
from .loop import LOOP_BUDGET_S, dispatch
from .outcomes import ambiguous, backoff, batch_failure, item_updates, retry
from .send import send_batch

__all__ = [
    "LEASE_MARGIN_S",
    "LOOP_BUDGET_S",
    "RESERVE_AHEAD_S",
    "Admission",
    "Report",
    "admit",
    "ambiguous",
    "backoff",
    "batch_failure",
    "dispatch",
    "give_back",
    "has_limits",
    "item_updates",
    "retry",
    "send_batch",
]
