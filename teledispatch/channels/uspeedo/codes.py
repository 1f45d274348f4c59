"""USpeedo codes → what the dispatcher does (docs/providers.md#uspeedo-batch-sms)."""

from __future__ import annotations

from teledispatch.channels.codes import Outcome

#: ``RetCode`` values. Anything absent (an undocumented code) is :data:`DEFAULT`.
CODES: dict[str, Outcome] = {
    "215400": Outcome("retry", "server error"),
    # 215392 bad parameter, 215397 missing parameter: the same request would be refused again.
    "215392": Outcome("reject", "rejected"),
    "215397": Outcome("reject", "rejected"),
}
#: The provider refused the whole request; the reason text is the historical one.
DEFAULT = Outcome("reject", "rejected")
#: HTTP statuses that mean the account's credentials were refused.
AUTH_STATUSES = frozenset({401, 403})
#: Refusals a route moves a message on for (``teledispatch.routes``): the account's
#: credentials refused. USpeedo documents no balance or destination code; its per-number
#: ``FailureReason`` is free text, so those stay ``failed``.
FAILOVER: frozenset[str] = frozenset({"401", "403"})

#: Receipt ``ReceiptResult`` → delivered (docs/providers.md#uspeedo-receipts); ``Unknow`` (sic)
#: and anything else: the carrier has not answered yet, ask again later.
RECEIPT_RESULT: dict[str, bool] = {"Success": True, "Fail": False, "SubmitFail": False}
