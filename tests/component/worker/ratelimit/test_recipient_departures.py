"""Per-recipient caps on the departure clock (recipient_depart.lua + recipient_confirm.lua),
on a controlled clock: a send written late must not put more than the cap into any window at
the provider, though its reservation was on time.
"""

from __future__ import annotations

import redis

from teledispatch.config import AccountConfig, parse_config
from teledispatch.worker.ratelimit import RateLimiter

T0 = 1_700_000_000_000  # ms
PHONE = "+8613800000001"


def account(**limits: object) -> AccountConfig:
    table = {"channel": "nxcloud.sms", "base_url": "http://x", **limits}
    return parse_config({"accounts": {"a": table}})["a"]


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Worker:
    """The send path's rate steps, each at a time the test picks: reserve, then at departure
    the account gate and the recipients' check, then the write (``arrivals``: what the
    provider saw, in ms)."""

    def __init__(self, rl: RateLimiter, acct: AccountConfig) -> None:
        self.rl, self.acct = rl, acct
        self.arrivals: list[float] = []

    def reserve(self, at_ms: float, phone: str = PHONE) -> float | None:
        res = self.rl.reserve(self.acct, [phone], max_wait_s=3.0, now_ms=at_ms)
        return res.send_at if res.admitted else None

    def depart(self, slot: float, at_ms: float, late_ms: float = 0.0) -> float | None:
        """Leave at ``at_ms``, written ``late_ms`` after; the due time (epoch s) if refused."""
        clock = Clock()
        gate = self.rl.depart(self.acct, 1, now_ms=at_ms, clock=clock)
        assert gate is not None
        check = self.rl.depart_recipients(self.acct, [PHONE], slot, now_ms=at_ms, clock=clock)
        if check.refused:
            gate.written()  # as the send path does: it can no longer leave
            return check.refused[0]
        for departure in (gate, check.departure):
            departure.written(at=clock.now + late_ms / 1000)
        self.arrivals.append(at_ms + late_ms)
        return None


def most_in_any_window(arrivals: list[float], window_ms: float) -> int:
    return max(sum(1 for b in arrivals if a <= b < a + window_ms) for a in arrivals)


def test_a_late_departure_defers_the_next_send_of_its_number(
    client: redis.Redis[bytes], prefix: str
) -> None:
    """Two request slots a second (spaced 510 ms), one send per number per second. A's slot is
    at T0 and B's, booked ahead, at T0 + 1530: apart by more than the window at booking time.
    A is written 700 ms late; B, on time, would make two arrivals within 830 ms."""
    acct = account(max_requests_per_second=2, recipient_caps=[{"count": 1, "window_s": 1}])
    rl = RateLimiter(client, key_prefix=prefix, jitter_s=0.02)
    w = Worker(rl, acct)
    slot_a = w.reserve(T0)
    for other in ("+8613800000002", "+8613800000003"):  # other numbers' slots
        assert w.reserve(T0 + 50, phone=other) is not None
    slot_b = w.reserve(T0 + 100)
    assert slot_a == T0 / 1000 and slot_b == (T0 + 1530) / 1000
    assert w.depart(slot_a, T0 + 690, late_ms=10) is None
    due = w.depart(slot_b, T0 + 1530)
    assert due is not None and due * 1000 >= T0 + 700 + 1000
    assert w.arrivals == [T0 + 700]
    # Tried again when due, it leaves; no window ever held two.
    slot_c = w.reserve(due * 1000)
    assert slot_c is not None and w.depart(slot_c, slot_c * 1000) is None
    assert most_in_any_window(w.arrivals, 1000) == 1


def test_a_pending_departure_counts_now_without_a_per_second_limit(
    client: redis.Redis[bytes], prefix: str
) -> None:
    """Only a recipient cap (no departure gate for the account): A granted but not yet written
    counts as departing now, so B, reserved once A's slot had left the window, is refused."""
    acct = account(recipient_caps=[{"count": 1, "window_s": 2}])
    rl = RateLimiter(client, key_prefix=prefix, jitter_s=0.02)
    slot_a = rl.reserve(acct, [PHONE], now_ms=T0).send_at
    check_a = rl.depart_recipients(acct, [PHONE], slot_a, now_ms=T0 + 1900, clock=Clock())
    assert check_a.refused == {}
    res_b = rl.reserve(acct, [PHONE], now_ms=T0 + 2100)
    # The reservation reads the pending stamp as its grant (T0 + 1.9 s): B waits for it.
    assert res_b.admitted == () and res_b.deferred[0] * 1000 >= T0 + 1900 + 2000
    check_b = rl.depart_recipients(acct, [PHONE], T0 / 1000, now_ms=T0 + 2100, clock=Clock())
    assert set(check_b.refused) == {0}


def test_confirm_moves_the_stamp_to_the_write_and_keeps_the_others(
    client: redis.Redis[bytes], prefix: str
) -> None:
    acct = account(recipient_caps=[{"count": 3, "window_s": 60}])
    rl = RateLimiter(client, key_prefix=prefix, jitter_s=0.02)
    key = rl.keys(acct).recipient(PHONE)
    slot = rl.reserve(acct, [PHONE, PHONE], now_ms=T0).send_at
    assert client.get(key) == f"0 {T0} {T0}".encode()
    clock = Clock()
    check = rl.depart_recipients(acct, [PHONE, PHONE], slot, now_ms=T0 + 40, clock=clock)
    assert check.refused == {}
    assert client.get(key) == f"0 p{T0 + 40} p{T0 + 40}".encode()
    check.departure.written(at=clock.now + 0.0125)
    assert client.get(key) == f"0 d{T0 + 53} d{T0 + 53}".encode()
    assert 0 < client.pttl(key) <= 60_000 + 10_000 + 100  # the window, plus the lease it had


def test_no_caps_no_check(client: redis.Redis[bytes], prefix: str) -> None:
    acct = account(max_requests_per_second=5)
    rl = RateLimiter(client, key_prefix=prefix)
    check = rl.depart_recipients(acct, [PHONE], None, now_ms=T0)
    assert check.refused == {} and check.departure.member is None
    assert list(client.scan_iter(match=f"{prefix}:*")) == []
