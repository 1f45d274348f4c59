"""``Teledispatch-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">``.

The Stripe scheme: the timestamp is signed with the body, so a receiver that rejects old
timestamps is safe from replays, and ``v1`` names the scheme so another can be added beside
it without breaking receivers.
"""

from __future__ import annotations

import hashlib
import hmac

HEADER = "Teledispatch-Signature"


def signature(secret: bytes, body: bytes, t: int) -> str:
    """The header's value for ``body`` sent at unix time ``t``."""
    mac = hmac.new(secret, str(t).encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


__all__ = ["HEADER", "signature"]
