"""NXCloud ``multi/mt`` codes → what the dispatcher does (docs/providers.md#nxcloud-batch-sms)."""

from __future__ import annotations

from teledispatch.channels.codes import Outcome

#: Request-level ``code`` values. Anything absent — auth (1001–1005), account (1100, 1102, 13002,
#: 13003) and parameter codes — is :data:`DEFAULT`: the same request would be refused again.
CODES: dict[str, Outcome] = {
    "-1": Outcome("retry", "failure"),
    "13008": Outcome("throttled", "TPS limit exceeded"),
    # 5 messages per number per hour: only that number must wait (reported per item).
    "13007": Outcome("defer_recipient", "per-number rate limit"),
}
DEFAULT = Outcome("reject", "rejected")

#: Refusals that say nothing against the message itself, only that this account cannot carry
#: it: a route moves such a message on to its next account (``teledispatch.routes``). Auth
#: (1001–1005), customer unavailable (1100), insufficient balance (1102), appKey or IP
#: whitelist (13002, 13003), a number format the account cannot reach (13005) and a sender
#: it refuses (13006). Content refusals (13001, 13009) would be refused anywhere: not here.
FAILOVER: frozenset[str] = frozenset(
    {"1001", "1002", "1003", "1004", "1005", "1100", "1102", "13002", "13003", "13005", "13006"}
)

#: An item's ``message`` as the docs write it: plain text, no code ("Incorrect phone number
#: format"). Matched case-insensitively by its start, so an added detail or a "(NNNN)" suffix
#: still reads as the same code.
ITEM_TEXTS: dict[str, str] = {
    "exceeded content length limit": "13001",
    "unavailable app or incorrect key": "13002",
    "incorrect phone number format": "13005",
    "incorrect source address": "13006",
    "rate limit exceeded": "13007",
    "tps limit exceeded": "13008",
    "empty content or illegal keywords": "13009",
}

#: How long a number capped by 13007 must wait: the cap is per hour.
RECIPIENT_CAP_WINDOW_S = 3600.0

#: DR ``status`` → (delivered, reason); anything else is not a final report.
DR_STATUS: dict[str, tuple[bool, str]] = {
    "2": (True, "delivered"),
    "5": (False, "delivery failed"),
    "6": (False, "rejected by the carrier"),
    "7": (False, "expired before delivery"),
    "8": (False, "deleted by the carrier"),
    "9": (False, "recipient is on a do-not-disturb list"),
    "10": (False, "invalid number"),
    "11": (False, "invalid sender id"),
    "12": (False, "carrier reported an unknown outcome"),
}
#: DR ``result``, used only when ``status`` is missing or unrecognised.
DR_RESULT: dict[str, tuple[bool, str]] = {
    "DELIVRD": (True, "delivered"),
    "UNDELIV": (False, "undeliverable"),
}
