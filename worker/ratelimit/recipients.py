"""Per-recipient holds and departures.

Holds: the provider says a number hit its own cap, so keep it back. The hold is written into
the recipient's key that ``reserve.lua`` reads for the configured per-recipient caps
(``worker/ratelimit/lua/defer.lua``), so every worker defers the number.

Departures: ``reserve.lua`` charges each recipient at its reserved slot, but a request may be
written long after it (a late wake, the departure gate's wait); judged at the slot alone, the
caps broke at the provider under load. :meth:`RecipientHolds.depart` checks them again on the
departure clock and stamps each send pending until :meth:`Departure.written` confirms the
measured write time (``recipient_depart.lua``, ``recipient_confirm.lua``), the treatment the
departure gate gives the account windows.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import redis

from teledispatch.config import AccountConfig

from .gate import Departure, ungated
from .keys import AccountKeys
from .scripts import US, Scripts, now_arg

#: NXCloud's documented cap, 5 per number per hour: the hold when no cap is configured.
DEFAULT_HOLD_S = 3600.0


@dataclass(frozen=True, slots=True)
class RecipientDeparture:
    """The departure check of one request's recipients."""

    #: batch index -> epoch seconds (server clock) from which that recipient fits: defer it
    refused: Mapping[int, float]
    #: confirm the sent recipients' stamps: call ``written()`` once the body is written
    departure: Departure = field(default_factory=ungated)


class RecipientHolds:
    def __init__(
        self,
        redis_client: redis.Redis[Any],
        scripts: Scripts,
        *,
        key_prefix: str,
        jitter_s: float = 0.0,
        lease_s: float = 10.0,
        margin: Callable[[str], float] | None = None,
    ) -> None:
        self._redis = redis_client
        self._scripts = scripts
        self._key_prefix = key_prefix
        self._jitter_s = jitter_s
        self._margin = margin
        self._lease_s = lease_s

    def _margin_s(self, account: AccountConfig) -> float:
        """The margin every window of ``account`` is widened by (see ``margin``)."""
        return self._jitter_s if self._margin is None else self._margin(account.name)

    def depart(
        self,
        account: AccountConfig,
        phones: Sequence[str],
        slot_at: float | None,
        *,
        now_ms: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> RecipientDeparture:
        """Check the batch's recipients against their caps as the request leaves.

        ``slot_at``: the reservation's slot (epoch s, server clock), whose stamps these sends
        replace. Refused recipients must not be sent (defer them until their time); the rest
        are stamped pending until ``departure.written()``. Without caps: nothing to check.
        """
        if not account.recipient_caps or not phones:
            return RecipientDeparture({})
        k = AccountKeys.of(self._key_prefix, account.name)
        margin_s = self._margin_s(account)
        caps: list[str] = []
        for cap in account.recipient_caps:
            caps += [str(cap.count), str(round(cap.window_s * US))]
        args = [
            now_arg(now_ms),
            str(round(slot_at * US)) if slot_at is not None else "0",
            str(round(margin_s * US)),
            str(round(self._lease_s * US)),
            str(len(account.recipient_caps)),
            *caps,
        ]
        started = clock()
        raw: Any = self._scripts.recipient_depart(
            keys=[k.recipient(p) for p in phones], args=args, client=self._redis
        )
        grant_ms, flat = int(raw[1]), raw[2]
        refused = {int(flat[j]): int(flat[j + 1]) / US for j in range(0, len(flat), 2)}
        sent = [k.recipient(p) for i, p in enumerate(phones) if i not in refused]
        if not sent:
            return RecipientDeparture(refused)
        keep_ms = str(
            max(round((c.window_s + margin_s) * 1000) + 1 for c in account.recipient_caps)
        )

        # Confirmed once, at the write: recipient windows are widened by the margin instead.
        def confirm(member: str, lateness_s: float, _before: int | None) -> object:
            return self._scripts.recipient_confirm(
                keys=sent, args=[member, str(round(lateness_s * US)), keep_ms], client=self._redis
            )

        return RecipientDeparture(refused, Departure(str(grant_ms), started, confirm, clock))

    def refund(
        self,
        account: AccountConfig,
        phones: Sequence[str],
        slot_at: float | None,
        departure: Departure | None = None,
    ) -> int:
        """The messages to ``phones`` do not leave after all (given back, parked past their
        slot, expired): take back the stamps their reservation at ``slot_at`` charged, and the
        pending ones of ``departure`` if it was granted but nothing was written. Otherwise the
        next reservation of the same message counts its own stamp and defers it for a whole
        window (``recipient_refund.lua``). Returns how many stamps were taken back.
        """
        if not account.recipient_caps or not phones:
            return 0
        k = AccountKeys.of(self._key_prefix, account.name)
        keys = [k.recipient(p) for p in phones]
        stamps: list[str] = []
        if slot_at is not None:
            stamps.append(str(math.ceil(round(slot_at * US) / 1000)))
        if departure is not None and departure.member is not None and not departure.confirmed:
            departure.confirmed = True  # taken back: never confirmed as written
            stamps.append(f"p{departure.member}")
        taken = 0
        for stamp in stamps:
            raw: Any = self._scripts.recipient_refund(keys=keys, args=[stamp], client=self._redis)
            taken += int(raw)
        return taken

    def defer(
        self,
        account: AccountConfig,
        phone: str,
        seconds: float | None = None,
        *,
        now_ms: float | None = None,
    ) -> float:
        """The provider says this number hit its own cap (NXCloud 13007): hold it back.

        By default for the account's longest recipient window (one hour if none is
        configured: NXCloud's documented 5 per number per hour). Returns the epoch seconds
        (server clock) until which ``reserve`` defers the number.
        """
        if seconds is None:
            windows = [cap.window_s for cap in account.recipient_caps]
            seconds = max(windows, default=DEFAULT_HOLD_S)
        raw: Any = self._scripts.defer(
            keys=[AccountKeys.of(self._key_prefix, account.name).recipient(phone)],
            args=[now_arg(now_ms), str(round(seconds * US))],
            client=self._redis,
        )
        return int(raw) / 1000
