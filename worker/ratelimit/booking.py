"""Booked slots: a batch that reserved a rate slot ahead waits in Redis, not in a process.

A worker process that slept until its slot (the earlier design) was a process no other
account could use: with a saturated rate-limited account, every process of the pool sat in
``sleep`` and a single on an unlimited account waited behind them. Now a batch whose slot is
more than :data:`SHORT_WAIT_S` ahead is *parked*: its claim stays in the database (rows
``sending`` under their token and lease), its booking goes into the account's parked set
(``park_pop.lua``), and a wake-up task is published with the slot as its countdown. Celery's
main process holds countdown tasks on a timer, so nothing of the pool waits; when the wake-up
runs, any dispatch of the account takes the due booking and sends it.

How far ahead a claim may book (:data:`AHEAD_S`): a little, whatever the rate. Enough that
the next batch is claimed and booked before its slot comes (utilisation; at 20 requests/s
that is three slots), short enough that a high-priority single arriving meanwhile is in the
next request (at 2 requests/s a claim is made 0.15 s before its slot, not a whole slot
before), and a saturated account does not claim rows it cannot send yet
(:meth:`Bookings.next_slot_in` is asked before claiming; when nothing is parked, the account
is woken when its next slot comes within reach: :meth:`Bookings.chain_wake`).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import redis
import redis.lock

from teledispatch.config import AccountConfig

from .keys import AccountKeys
from .scripts import US, Scripts

#: A wait this short is slept in the process: less than what parking costs (a Redis write,
#: a publish, a task start, a database read of the rows: a few ms of CPU), and below the
#: accuracy of Celery's timer, so parking would only make the send later.
SHORT_WAIT_S = 0.005

#: A parked batch's wake-up is published this much before its slot: the task's start, the
#: booking's pop, the read of its rows, building the request and the departure mark take
#: about this long on a loaded machine (4 ms made most requests late); the rest is slept.
WAKE_LEAD_S = 0.03

#: How far ahead a claim may book its slot (see the module's docstring).
AHEAD_S = 0.15

#: Never book further ahead than this: the claim's lease (request timeout + 10 s) must
#: outlast the wait.
MAX_AHEAD_S = 3.0


def horizon_s(account: AccountConfig) -> float:
    """How far ahead a batch of ``account`` may book its slot."""
    return min(MAX_AHEAD_S, AHEAD_S)


@dataclass(frozen=True, slots=True)
class Booking:
    """A parked batch: the claim it belongs to, its slot (server clock), its concurrency slot."""

    token: str
    group_key: str
    send_at: float
    slot: str | None = None
    #: The slot its reservation charged the recipients at, when it is not ``send_at`` (a batch
    #: parked again at the departure gate): the departure replaces, or a give-back refunds,
    #: the stamps of that slot, not of the later one.
    stamp_at: float | None = None

    @property
    def stamped_at(self) -> float:
        return self.send_at if self.stamp_at is None else self.stamp_at

    def encode(self) -> str:
        return json.dumps([self.token, self.group_key, self.send_at, self.slot, self.stamp_at])

    @classmethod
    def decode(cls, raw: str | bytes) -> Booking:
        # Four fields: a booking parked before ``stamp_at`` existed (a rolling upgrade).
        token, group_key, send_at, slot, *rest = json.loads(raw)
        stamp_at = float(rest[0]) if rest and rest[0] is not None else None
        return cls(str(token), str(group_key), float(send_at), slot, stamp_at)


@dataclass(frozen=True, slots=True)
class Popped:
    """What :meth:`Bookings.pop_due` found."""

    booking: Booking | None
    #: the server clock at the pop, and ``time.monotonic()`` at the same moment
    server_now: float
    local_now: float
    #: the soonest parked slot when none was due (None: nothing parked)
    soonest: float | None = None


class Bookings:
    """The parked set of each account (``td:rl:{acct}:parked``)."""

    def __init__(
        self, redis_client: redis.Redis[Any], scripts: Scripts, *, key_prefix: str
    ) -> None:
        self._redis = redis_client
        self._scripts = scripts
        self._key_prefix = key_prefix

    def _key(self, account: AccountConfig) -> str:
        return f"{AccountKeys.of(self._key_prefix, account.name).base}:parked"

    def park(self, account: AccountConfig, booking: Booking, lease_s: float) -> None:
        """Keep ``booking`` until its slot; the set outlives the claim's lease, no longer."""
        key = self._key(account)
        pipe = self._redis.pipeline(transaction=False)
        pipe.zadd(key, {booking.encode(): round(booking.send_at * US)})
        pipe.expire(key, max(1, int(lease_s + MAX_AHEAD_S) + 1))
        pipe.execute()

    def pop_due(self, account: AccountConfig, lead_s: float = WAKE_LEAD_S) -> Popped:
        """Take the soonest booking whose slot is at most ``lead_s`` ahead, if any."""
        before = time.monotonic()
        raw: Any = self._scripts.park_pop(
            keys=[self._key(account)], args=["", str(round(lead_s * US))], client=self._redis
        )
        local_now = (before + time.monotonic()) / 2
        member, score, now_us = raw
        server_now = int(now_us) / US
        if member:
            return Popped(Booking.decode(member), server_now, local_now)
        soonest = int(float(score)) / US if float(score) else None
        return Popped(None, server_now, local_now, soonest)

    def claiming(self, account: AccountConfig, ttl_s: float) -> redis.lock.Lock | None:
        """The account's claim turn, held while a claim books its slots; None if another
        dispatch holds it. One claimer at a time: two claiming together split the due rows
        (each skips what the other locked) and only one gets the slot, so a high-priority
        single could go back to wait in the loser's claim (measured: 1.16 s behind a 0.5 s
        slot). The lock's own expiry frees it if its holder dies."""
        lock = self._redis.lock(f"{self._key(account)}:claiming", timeout=ttl_s)
        return lock if lock.acquire(blocking=False) else None

    def chain_wake(self, account: AccountConfig, delay_s: float) -> bool:
        """Whether to publish the wake-up for the account's next slot ``delay_s`` from now:
        True for the first asker within that time (one task, however many dispatches ask)."""
        key = f"{self._key(account)}:chain"
        return bool(self._redis.set(key, b"1", nx=True, px=max(1, round(delay_s * 1000))))

    def pending(self, account: AccountConfig) -> int:
        """How many batches of the account are parked."""
        return int(self._redis.zcard(self._key(account)))

    def next_slot_in(self, account: AccountConfig) -> float:
        """Seconds until the account's next free request slot could start, at the earliest
        (read-only; the reservation decides). 0 or less: a slot is free now."""
        k = AccountKeys.of(self._key_prefix, account.name)
        pipe = self._redis.pipeline(transaction=False)
        pipe.time()
        pipe.hmget(k.state, ["tat", "last", "gate", "mnext"])
        (sec, usec), fields = pipe.execute()
        now_us = int(sec) * US + int(usec)
        # tat: the next request slot; last: the latest reserved; gate: Retry-After; mnext:
        # when a full batch next fits the messages/s budget (reserve.lua).
        if account.max_requests_per_second is None:
            fields = fields[1:]
        values = [float(v) for v in fields if v is not None]
        return (max(values, default=now_us) - now_us) / US
