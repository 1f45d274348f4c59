"""The departure gate: the last check before a request leaves, a sliding window over the
latest moments requests can have reached the provider (``worker/ratelimit/lua/depart.lua`` and
``confirm.lua``).

Why departures are confirmed
    Reservations space the slots, but no spacing covers a worker descheduled between its slot
    and its write (tens of milliseconds on a loaded machine). :meth:`DepartureGate.depart`
    therefore grants each request *pending* (counted as departing at every later decision's
    "now") until :meth:`Departure.written` confirms the measured write time plus the margin by
    which its arrival may lag the write. Lateness is measured on this process's monotonic clock
    from just before the granting call, so grant + lateness is never earlier than the write.

Why again at the answer
    The provider had the request before its answer's head came back, so grant + the time to
    that head bounds the arrival exactly. :meth:`Departure.answered` moves the entry back to
    it: a window then costs the rate only this request's own round trip, not a margin sized for
    the slowest recent one. The margin still covers a request whose answer never comes, and
    one whose answer comes later than it: the entry is never moved later. The margin (at
    most the configured jitter) is the assumption, as before, of how long after its write a
    request can still arrive; a slow answer is a provider slow to answer, not a slow arrival,
    and anchoring windows at it would cost such a provider most of its rate.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable
from typing import Any

import redis

from teledispatch.config import AccountConfig

from .keys import AccountKeys
from .margin import ANSWER_FLOOR_S
from .scripts import US, Scripts, now_arg

log = logging.getLogger("teledispatch.ratelimit")

#: Default longest wait at the departure gate before giving the batch back. Reservations come
#: at the full rate, but each departure pushes the one ten places later by its own lateness, so
#: the gate drains a little slower and, after late wakes, a queue forms in front of it. Processes
#: waiting there are not reserving or sending: a queue of 2 s (the old bound) starved the pool
#: (93-95 % utilisation); refusing waits beyond a couple of slots drops the queue's tail instead.
DEPART_TIMEOUT_S = 0.25

#: How long a granted but unconfirmed departure counts as departing "now". Every live sender
#: confirms within its connect timeout (at most 5 s, see ``worker/transport.py``) plus one write
#: of a small body, and confirms on any failure too; only a sender that died between grant and
#: write outlives this, and its place is then held for the lease plus one window.
DEPART_LEASE_S = 10.0

#: ``confirm(member, grant_to_s, before)``: one round trip to Redis (``confirm.lua``); ``before``
#: is the time the first confirm returned (None for the first). Returns the entry's time (us).
Confirm = Callable[[str, float, "int | None"], object]


class Departure:
    """One granted request. Call :meth:`written` when its body has been written (and again,
    harmlessly, when the send is over: the first call wins), then :meth:`answered` when its
    answer's head has come."""

    __slots__ = (
        "_clock",
        "_confirm",
        "confirmed",
        "confirmed_us",
        "lateness_s",
        "margin_s",
        "member",
        "started",
        "tightens",
    )

    def __init__(
        self,
        member: str | None,
        started: float,
        confirm: Confirm | None,
        clock: Callable[[], float] = time.monotonic,
        *,
        margin_s: float = 0.0,
        tightens: bool = False,
    ) -> None:
        #: The pending entry in the departures set; None when the account has no per-second
        #: limit (nothing to confirm).
        self.member = member
        #: ``clock()`` just before the call that granted.
        self.started = started
        self._confirm = confirm
        self._clock = clock
        #: How long after its write the request may still arrive, as far as the gate knows.
        self.margin_s = margin_s
        #: Whether :meth:`answered` moves the entry back to the answer's head.
        self.tightens = tightens
        self.confirmed = member is None
        #: Grant to write, as confirmed (None until then).
        self.lateness_s: float | None = None
        #: The entry's time the confirm returned (us; None until then, or if it failed).
        self.confirmed_us: int | None = None

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
            got = self._confirm(self.member, lateness + self.margin_s, None)
        except Exception as exc:  # any failure: the send goes on
            log.warning(
                "departure confirm failed (%s); it counts until its lease", type(exc).__name__
            )
            return
        self.confirmed_us = got if isinstance(got, int) else None

    def answered(self, after_write_s: float) -> None:
        """The answer's head came ``after_write_s`` after the write: the provider had the
        request by then, so its entry moves back to that moment if that is earlier than
        where :meth:`written` put it. Never raises (the answer is already in)."""
        if not self.tightens or self.member is None or self._confirm is None:
            return
        lateness = self.lateness_s
        if lateness is None or not 0 <= after_write_s < self.margin_s - ANSWER_FLOOR_S:
            return
        try:
            self._confirm(self.member, lateness + after_write_s + ANSWER_FLOOR_S, self.confirmed_us)
        except Exception as exc:
            log.warning("departure answer-time confirm failed (%s)", type(exc).__name__)


def ungated() -> Departure:
    """For accounts without request/message-per-second limits: nothing to gate or confirm."""
    return Departure(None, time.monotonic(), None)


class DepartureGate:
    """Grants departures against the account's requests/s and messages/s, per window of 1 s
    (1/rate below one request per second) over entries that carry their request's margin:
    ``jitter_s``, or the adaptive ``margin`` (then moved back to each answer's head)."""

    def __init__(
        self,
        redis_client: redis.Redis[Any],
        scripts: Scripts,
        *,
        key_prefix: str,
        jitter_s: float,
        lease_s: float,
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
        messages: int,
        *,
        timeout_s: float = DEPART_TIMEOUT_S,
        now_ms: float | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> Departure | None:
        """Ask to write a request right now; None if the window stayed full for ``timeout_s``
        (then do not send: re-queue). Call ``written()`` on the result once the body is written.

        :meth:`try_depart` says how long the window stays full instead.
        """
        got = self.try_depart(
            account, messages, timeout_s=timeout_s, now_ms=now_ms, sleep=sleep, clock=clock
        )
        return got if isinstance(got, Departure) else None

    def try_depart(
        self,
        account: AccountConfig,
        messages: int,
        *,
        timeout_s: float = DEPART_TIMEOUT_S,
        now_ms: float | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> Departure | float:
        """As :meth:`depart`, but a refusal is the seconds until the window may have room
        (wait that long, parked, and ask again).

        The reservation spaced the slots; this checks the sliding window on real write times,
        so a sender descheduled after its slot (or after this grant) cannot bunch with the next.
        ``clock`` measures the lateness the confirmation reports (tests inject one).
        """
        window_s, max_req, max_msg = self.window(account)
        if not max_req and not max_msg:
            return ungated()
        margin_s = self._margin_s(account)
        keys = AccountKeys.of(self._key_prefix, account.name)
        key = keys.departures
        ttl_ms = str(round((window_s + margin_s + self._lease_s) * 1000) + 1000)

        def confirm(pending: str, grant_to_s: float, before: int | None) -> object:
            first = "" if before is None else str(before)
            args = [pending, str(round(grant_to_s * US)), ttl_ms, first]
            return self._scripts.confirm(keys=[key], args=args, client=self._redis)

        args = [
            now_arg(now_ms),
            str(round(window_s * US)),
            str(max_req),
            str(max_msg),
            str(messages),
            secrets.token_hex(8),
            str(round(self._lease_s * US)),
            str(round(margin_s * US)),
        ]
        deadline = clock() + timeout_s
        while True:
            started = clock()
            raw: Any = self._scripts.depart(keys=[key, keys.state], args=args, client=self._redis)
            wait = int(raw[0]) / US
            if wait == 0:
                member = raw[2].decode() if isinstance(raw[2], bytes) else str(raw[2])
                return Departure(
                    member,
                    started,
                    confirm,
                    clock,
                    margin_s=margin_s,
                    tightens=self._margin is not None,
                )
            if now_ms is not None or clock() + wait > deadline:
                return wait
            sleep(wait)

    def window(self, account: AccountConfig) -> tuple[float, int, int]:
        """(window_s, requests, messages) per window of the gate; 0 = no limit. Each entry
        carries its own margin (see ``confirm.lua``), so the window is the limit's own.

        Whole numbers per window, as reserve.lua floors them: 2.5/s allows 2 in any window.
        """
        per_s = account.max_requests_per_second
        msg_s = account.max_messages_per_second
        window_s = 1.0
        max_req = max(1, int(per_s)) if per_s else 0
        max_msg = max(1, int(msg_s)) if msg_s else 0
        if per_s and per_s < 1:
            window_s, max_req = 1.0 / per_s, 1
        return window_s, max_req, max_msg
