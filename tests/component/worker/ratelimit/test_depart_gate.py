"""The departure gate (depart.lua + confirm.lua): a sliding window over the latest moments
requests can have reached the provider, on a controlled clock, against fakeredis and a real
Redis.

A grant is pending until confirmed with its measured lateness plus the margin (20 ms here: no
answer times yet); while pending it counts as departing at every later decision's "now", for
at most the lease. Its answer moves it back to grant + the measured time to the answer's head.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import fakeredis
import pytest
import redis

from teledispatch.config import AccountConfig, parse_config
from teledispatch.worker.ratelimit import Departure, RateLimiter
from teledispatch.worker.ratelimit.scripts import Scripts

T0 = 1_700_000_000_000  # ms


def account(**limits: object) -> AccountConfig:
    table = {"channel": "nxcloud.sms", "base_url": "http://x", **limits}
    return parse_config({"accounts": {"a": table}})["a"]


class Clock:
    """The worker's monotonic clock, moved by hand: lateness is what the test says it is."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def gate(client: redis.Redis[bytes], prefix: str, **kw: Any) -> RateLimiter:
    return RateLimiter(client, key_prefix=prefix, jitter_s=0.02, **kw)


def depart(
    rl: RateLimiter, acct: AccountConfig, at_ms: float, late_ms: float | None = 0, n: int = 1
) -> Departure | None:
    """Ask at ``at_ms`` (server clock); if granted, confirm ``late_ms`` later (None: leave it
    pending). Returns the departure, or None if refused."""
    clock = Clock()
    dep = rl.depart(acct, n, now_ms=at_ms, clock=clock)
    if dep is not None and late_ms is not None:
        dep.written(at=clock.now + late_ms / 1000)
    return dep


def entries(client: redis.Redis[bytes], rl: RateLimiter, acct: AccountConfig) -> list[Any]:
    key = rl.keys(acct).departures
    return [(m.decode(), s) for m, s in client.zrange(key, 0, -1, withscores=True)]


# --- the window itself (all confirmed on time) ---------------------------------------------


def test_requests_window_refuses_the_eleventh(client: redis.Redis[bytes], prefix: str) -> None:
    rl, acct = gate(client, prefix), account(max_requests_per_second=10)
    for k in range(10):
        assert depart(rl, acct, T0 + k * 90)
    # 10 departed within 0.81 s: an 11th before the first leaves the 1.02 s window waits.
    assert not depart(rl, acct, T0 + 950)
    assert not depart(rl, acct, T0 + 1019)
    assert depart(rl, acct, T0 + 1021)


def test_messages_window_counts_batch_sizes(client: redis.Redis[bytes], prefix: str) -> None:
    rl, acct = gate(client, prefix), account(max_messages_per_second=500)
    assert depart(rl, acct, T0, n=300)
    assert depart(rl, acct, T0 + 100, n=200)
    assert not depart(rl, acct, T0 + 500, n=1)
    assert depart(rl, acct, T0 + 1021, n=250)  # the 300 left the window


def test_no_per_second_limit_needs_no_redis(client: redis.Redis[bytes], prefix: str) -> None:
    rl, acct = gate(client, prefix), account(max_messages_per_hour=10)
    deps = [depart(rl, acct, T0, n=1000) for _ in range(50)]
    assert all(d is not None and d.member is None for d in deps)
    assert entries(client, rl, acct) == []


# --- pending and confirmed times ---------------------------------------------------------


def test_confirm_sets_grant_plus_lateness_plus_margin(
    client: redis.Redis[bytes], prefix: str
) -> None:
    rl, acct = gate(client, prefix), account(max_requests_per_second=5)
    clock = Clock()
    dep = rl.depart(acct, 7, now_ms=T0, clock=clock)
    assert dep is not None and dep.member is not None
    assert dep.member == f"{T0 * 1000}:7:p:{dep.member.rsplit(':', 1)[1]}"
    ((member, score),) = entries(client, rl, acct)
    assert (member, score) == (dep.member, (T0 + 10_000) * 1000)  # pending: grant + lease
    clock.now += 0.0375  # descheduled for 37.5 ms between the grant and the write
    dep.written()
    dep.written(at=clock.now + 5)  # the second call (end of send) changes nothing
    token = dep.member.rsplit(":", 1)[1]
    at = T0 * 1000 + 37_500 + 20_000
    assert entries(client, rl, acct) == [(f"{at}:7:{token}", at)]
    assert dep.lateness_s == pytest.approx(0.0375)


def test_lateness_counts_from_before_the_granting_call(
    client: redis.Redis[bytes], prefix: str
) -> None:
    rl, acct = gate(client, prefix), account(max_requests_per_second=5)
    readings: list[tuple[float, int]] = []  # (clock value, entries in the set when read)

    def clock() -> float:
        readings.append((len(readings) * 0.001, client.zcard(rl.keys(acct).departures)))
        return readings[-1][0]

    dep = rl.depart(acct, 1, now_ms=T0, clock=clock)
    assert dep is not None
    # The reading the lateness starts from was taken before the grant existed: the round trip
    # that granted is inside the measured lateness, never outside it.
    assert (dep.started, 0) in readings
    dep.written(at=dep.started + 0.010)
    assert entries(client, rl, acct)[0][1] == T0 * 1000 + 10_000 + 20_000


def test_pending_counts_as_departing_now(client: redis.Redis[bytes], prefix: str) -> None:
    rl, acct = gate(client, prefix), account(max_requests_per_second=1)
    pending = depart(rl, acct, T0, late_ms=None)
    assert pending is not None
    # 1.5 s later the grant alone would have left the 1.02 s window; unconfirmed, it may not
    # have been written yet, so it still counts.
    assert not depart(rl, acct, T0 + 1500)
    pending.written(at=pending.started + 0.6)  # it was written 600 ms after its grant
    assert not depart(rl, acct, T0 + 1619)
    assert depart(rl, acct, T0 + 1621)


def test_late_write_pushes_the_next_departure(client: redis.Redis[bytes], prefix: str) -> None:
    rl, acct = gate(client, prefix), account(max_requests_per_second=10)
    assert depart(rl, acct, T0, late_ms=40)  # request 0 left 40 ms after its grant
    for k in range(1, 10):
        assert depart(rl, acct, T0 + k * 102)
    # Request 10 on time (T0 + 1020) would make 11 within one second of request 0's write.
    assert not depart(rl, acct, T0 + 1021)
    assert not depart(rl, acct, T0 + 1059)
    assert depart(rl, acct, T0 + 1061)


def test_a_grant_moves_the_next_reservation_to_when_the_window_has_room(
    client: redis.Redis[bytes], prefix: str
) -> None:
    """Two requests per 1.02 s, the first sent 200 ms after its slot: the reservations'
    next slot (``tat``) moves to when the gate will let the third leave, not sooner."""
    rl, acct = gate(client, prefix), account(max_requests_per_second=2)
    state = rl.keys(acct).state
    client.hset(state, "tat", str((T0 + 400) * 1000))
    assert depart(rl, acct, T0 + 200)  # the slot was T0, it left at T0 + 200
    # One departure in a window of two: the next may leave at once; tat is left as it was.
    assert int(client.hget(state, "tat") or 0) == (T0 + 400) * 1000
    assert depart(rl, acct, T0 + 510)
    # The third must wait for the first to leave the window: just after T0 + 200 + 1020.
    assert int(client.hget(state, "tat") or 0) == (T0 + 1220) * 1000 + 1
    assert not depart(rl, acct, T0 + 1220)
    assert depart(rl, acct, T0 + 1221)


def test_the_next_slot_counts_the_entries_in_time_order(
    client: redis.Redis[bytes], prefix: str
) -> None:
    """An entry another process confirmed (its own lateness and margin) can lie later than
    this grant's: the next slot is set by the earliest of the two, not the first listed."""
    acct = account(max_requests_per_second=2)
    wide = RateLimiter(client, key_prefix=prefix, jitter_s=0.05, adaptive_margin=False)
    rl = gate(client, prefix)  # a 20-ms margin
    state = rl.keys(acct).state
    assert depart(wide, acct, T0, late_ms=60)  # its entry: T0 + 60 + 50 = T0 + 110 ms
    client.hset(state, "tat", str(T0 * 1000))
    assert depart(rl, acct, T0 + 70, late_ms=None)  # counted at T0 + 70 + 20 = T0 + 90 ms
    # Two per window: the third may leave once the earlier of the two, T0 + 90 ms, has.
    assert int(client.hget(state, "tat") or 0) == (T0 + 1090) * 1000 + 1


def test_a_grant_never_creates_the_reservation_state(
    client: redis.Redis[bytes], prefix: str
) -> None:
    rl, acct = gate(client, prefix), account(max_requests_per_second=1)
    assert depart(rl, acct, T0)
    assert not client.exists(rl.keys(acct).state)


def test_wait_for_a_pending_entry_is_its_grant_plus_window(
    client: redis.Redis[bytes], prefix: str
) -> None:
    rl, acct = gate(client, prefix), account(max_requests_per_second=1)
    scripts = Scripts.register(client)
    key = rl.keys(acct).departures

    def ask(at_ms: int) -> list[Any]:
        args = [str(at_ms * 1000), "1000000", "1", "0", "1", "x", "10000000", "20000"]
        keys = [key, rl.keys(acct).state]
        return list(scripts.depart(keys=keys, args=args, client=client))

    assert depart(rl, acct, T0, late_ms=None)
    # Confirming places it at least the margin after its grant: nothing frees before
    # T0 + 20 ms + 1 s.
    assert ask(T0 + 500) == [520_000, (T0 + 500) * 1000, b""]
    # Pending for longer than a window: its confirm may come any moment, ask again soon.
    assert ask(T0 + 1500)[0] == 2000


def test_messages_of_pending_entries_count(client: redis.Redis[bytes], prefix: str) -> None:
    rl, acct = gate(client, prefix), account(max_messages_per_second=500)
    assert depart(rl, acct, T0, late_ms=10, n=300)
    held = depart(rl, acct, T0 + 100, late_ms=None, n=200)
    assert held is not None
    assert not depart(rl, acct, T0 + 1025, n=250)  # the 300 (written at +10 ms) still in
    assert not depart(rl, acct, T0 + 1031, n=301)  # 300 left; pending 200 + 301 > 500
    held.written(at=held.started)
    assert depart(rl, acct, T0 + 1031, n=250)
    assert not depart(rl, acct, T0 + 1031, n=51)


def test_a_pending_entry_counts_at_most_its_lease(client: redis.Redis[bytes], prefix: str) -> None:
    rl, acct = gate(client, prefix, depart_lease_s=3.0), account(max_requests_per_second=1)
    assert depart(rl, acct, T0, late_ms=None)  # the sender died before writing
    assert not depart(rl, acct, T0 + 2900)
    assert not depart(rl, acct, T0 + 4000)  # after the lease it counts at T0 + 3 s...
    assert depart(rl, acct, T0 + 4021)  # ...and leaves the window 1.02 s later


def test_confirm_after_the_lease_puts_the_write_back(
    client: redis.Redis[bytes], prefix: str
) -> None:
    rl, acct = gate(client, prefix, depart_lease_s=3.0), account(max_requests_per_second=2)
    stuck = depart(rl, acct, T0, late_ms=None)
    assert stuck is not None
    assert depart(rl, acct, T0 + 4100, late_ms=None)  # stuck's lease is over: it was dropped
    stuck.written(at=stuck.started + 4.2)  # it did write, at T0 + 4.2 s
    assert not depart(rl, acct, T0 + 4300)  # both count again


def test_confirm_failure_never_raises(caplog: pytest.LogCaptureFixture) -> None:
    server = fakeredis.FakeServer()
    rl = gate(fakeredis.FakeRedis(server=server), "td:rl:test")
    dep = rl.depart(account(max_requests_per_second=10), 1, now_ms=T0)
    assert dep is not None
    server.connected = False  # Redis goes away while the request is being written
    with caplog.at_level(logging.WARNING, logger="teledispatch.ratelimit"):
        dep.written()
    assert dep.confirmed and "departure confirm failed (ConnectionError)" in caplog.text


# --- the answer's head ----------------------------------------------------------------------


def test_answer_moves_the_entry_back_to_its_head(client: redis.Redis[bytes], prefix: str) -> None:
    rl, acct = gate(client, prefix), account(max_requests_per_second=1)
    dep = depart(rl, acct, T0, late_ms=10)  # entry at T0 + 10 ms + 20 ms margin
    assert dep is not None and dep.member is not None
    dep.answered(0.004)  # the answer's head came 4 ms after the write
    token = dep.member.rsplit(":", 1)[1]
    at = (T0 + 10 + 4 + 1) * 1000  # + the 1-ms floor
    assert entries(client, rl, acct) == [(f"{at}:1:{token}", at)]
    # The next request may leave one second after that head, not one after write + margin.
    assert not depart(rl, acct, T0 + 1015)
    assert depart(rl, acct, T0 + 1016)


def test_an_answer_slower_than_the_margin_leaves_the_entry(
    client: redis.Redis[bytes], prefix: str
) -> None:
    rl, acct = gate(client, prefix), account(max_requests_per_second=1)
    dep = depart(rl, acct, T0, late_ms=10)
    assert dep is not None
    before = entries(client, rl, acct)
    dep.answered(0.5)  # later than write + margin: that bound was already tighter
    dep.answered(float("nan"))  # nonsense is ignored
    assert entries(client, rl, acct) == before


def test_an_answer_never_brings_back_a_dropped_entry(
    client: redis.Redis[bytes], prefix: str
) -> None:
    rl, acct = gate(client, prefix), account(max_requests_per_second=1)
    dep = depart(rl, acct, T0, late_ms=10)
    assert dep is not None
    client.delete(rl.keys(acct).departures)  # it left the window (or the set expired)
    dep.answered(0.004)
    assert entries(client, rl, acct) == []


def test_an_answer_places_an_entry_whose_first_confirm_failed(
    client: redis.Redis[bytes], prefix: str
) -> None:
    rl, acct = gate(client, prefix), account(max_requests_per_second=1)
    dep = depart(rl, acct, T0, late_ms=None)
    assert dep is not None and dep.member is not None
    dep.confirmed, dep.lateness_s = True, 0.010  # as after a confirm that Redis did not take
    dep.answered(0.004)
    token = dep.member.rsplit(":", 1)[1]
    assert entries(client, rl, acct) == [(f"{(T0 + 15) * 1000}:1:{token}", (T0 + 15) * 1000)]


def test_a_fixed_margin_is_kept_after_the_answer(client: redis.Redis[bytes], prefix: str) -> None:
    rl, acct = gate(client, prefix, adaptive_margin=False), account(max_requests_per_second=1)
    dep = depart(rl, acct, T0, late_ms=10)
    assert dep is not None
    dep.answered(0.004)
    assert entries(client, rl, acct)[0][1] == (T0 + 30) * 1000


# --- on the real clock ---------------------------------------------------------------------


def test_waits_then_departs_on_the_server_clock(client: redis.Redis[bytes], prefix: str) -> None:
    rl, acct = gate(client, prefix), account(max_requests_per_second=2)
    slept: list[float] = []

    def sleep(s: float) -> None:
        slept.append(s)
        time.sleep(s)

    for _ in range(2):
        dep = rl.depart(acct, 1)
        assert dep is not None
        dep.written()
    # The third must wait for the first to leave the 1.02 s window; the injected sleep
    # records how long (a few ms of slack for the round trips on a loaded machine).
    third = rl.depart(acct, 1, sleep=sleep, timeout_s=2.0)
    assert third is not None
    assert slept and 0.9 < sum(slept) <= 1.1


def test_unconfirmed_departures_hold_the_window_until_timeout(
    client: redis.Redis[bytes], prefix: str
) -> None:
    rl, acct = gate(client, prefix), account(max_requests_per_second=1)
    assert rl.depart(acct, 1) is not None  # never confirmed: still being written, as far as
    started = time.monotonic()  # the gate knows
    assert rl.depart(acct, 1, timeout_s=0.3) is None
    assert time.monotonic() - started < 0.3 + 0.2
