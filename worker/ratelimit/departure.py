"""A departure granted by the gate (``worker/lua/depart.lua``), confirmed once the request is
written.

The gate counts a granted request as departing "now" until it learns the real time, because a
worker can be descheduled between the grant and its write for tens of milliseconds on a busy
machine. :meth:`Departure.written` tells it: lateness is measured on this process's monotonic
clock from just before the granting call, so grant + lateness is never earlier than the write.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

log = logging.getLogger("teledispatch.ratelimit")

#: ``confirm(member, lateness_s)``: one round trip to Redis (``worker/lua/confirm.lua``).
Confirm = Callable[[str, float], object]


class Departure:
    """One granted request. Call :meth:`written` when its body has been written (and again,
    harmlessly, when the send is over: the first call wins)."""

    __slots__ = ("_clock", "_confirm", "confirmed", "lateness_s", "member", "started")

    def __init__(
        self,
        member: str | None,
        started: float,
        confirm: Confirm | None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        #: The pending entry in the departures set; None when the account has no per-second
        #: limit (nothing to confirm).
        self.member = member
        #: ``clock()`` just before the call that granted.
        self.started = started
        self._confirm = confirm
        self._clock = clock
        self.confirmed = member is None
        #: Grant to write, as confirmed (None until then).
        self.lateness_s: float | None = None

    def written(self, at: float | None = None) -> None:
        """The request has left (or can no longer leave): record its time. Never raises.

        A Redis error here must not break a send that is already on the wire; the entry then
        stays pending and counts as departing until its lease runs out (over-counting only).
        """
        if self.confirmed:
            return
        self.confirmed = True
        lateness = max(0.0, (self._clock() if at is None else at) - self.started)
        self.lateness_s = lateness
        if self.member is None or self._confirm is None:
            return
        try:
            self._confirm(self.member, lateness)
        except Exception as exc:  # any failure: the send goes on
            log.warning(
                "departure confirm failed (%s); it counts until its lease", type(exc).__name__
            )


def ungated() -> Departure:
    """For accounts without request/message-per-second limits: nothing to gate or confirm."""
    return Departure(None, time.monotonic(), None)
