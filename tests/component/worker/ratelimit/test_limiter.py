"""The global rate limiter's Lua, on a controlled clock, against fakeredis and a real Redis.

Every decision is checked to the microsecond: the spacing the margin implies, the exact due
time of a deferred recipient, the partial admission of an hour/day budget.
"""

from __future__ import annotations

from importlib.resources import files
from typing import Any

import pytest
import redis

from teledispatch.config import AccountConfig
from teledispatch.worker.ratelimit import UNLIMITED, RateLimiter, Reservation
from teledispatch.worker.ratelimit.scripts import lua_source

T0 = 1_700_006_400_000  # ms; a UTC midnight, so hour and day buckets start at T0
S0 = T0 / 1000


def account(**limits: Any) -> AccountConfig:
    return AccountConfig(name="acct", channel="nxcloud.sms", base_url="http://nx.test", **limits)


def limiter(client: redis.Redis[bytes], prefix: str, **kw: Any) -> RateLimiter:
    return RateLimiter(client, key_prefix=prefix, **kw)


def slots(
    rl: RateLimiter, acct: AccountConfig, n: int, now_ms: float, max_wait_s: float = 1.0
) -> list[float | None]:
    return [
        rl.reserve(acct, ["+1"], now_ms=now_ms, max_wait_s=max_wait_s).send_at for _ in range(n)
    ]


# --- requests per second: GCRA, no burst, margin --------------------------------------------


def test_request_slots_are_spaced_by_rate_plus_margin(
    client: redis.Redis[bytes], prefix: str
) -> None:
    rl = limiter(client, prefix, jitter_s=0.02)
    acct = account(max_requests_per_second=10)
    got = slots(rl, acct, 10, T0)
    assert got == pytest.approx([S0 + k * 0.102 for k in range(10)], abs=1e-6)
    # The 11th slot (1.02 s ahead) is beyond max_wait=1 s: nothing charged, ask again in 20 ms.
    r = rl.reserve(acct, ["+1", "+2"], now_ms=T0)
    assert (r.admitted, r.retry, r.send_at) == ((), (0, 1), None)
    assert r.wait_s == pytest.approx(0.02, abs=1e-6)
    assert rl.reserve(acct, ["+1"], now_ms=T0 + 20).send_at == pytest.approx(S0 + 1.02)


def test_margin_is_a_setting(client: redis.Redis[bytes], prefix: str) -> None:
    rl = limiter(client, prefix, jitter_s=0.0)
    got = slots(rl, account(max_requests_per_second=10), 3, T0)
    assert got == pytest.approx([S0, S0 + 0.1, S0 + 0.2], abs=1e-6)


def test_no_burst_after_idle(client: redis.Redis[bytes], prefix: str) -> None:
    rl = limiter(client, prefix)
    acct = account(max_requests_per_second=5)
    slots(rl, acct, 3, T0)
    later = T0 + 60_000
    assert slots(rl, acct, 2, later) == pytest.approx(
        [later / 1000, later / 1000 + 0.204], abs=1e-6
    )


@pytest.mark.parametrize(("rate", "spacing"), [(2.5, 1.02 / 2), (0.5, 2.02)])
def test_fractional_rates_never_exceed_any_window(
    client: redis.Redis[bytes], prefix: str, rate: float, spacing: float
) -> None:
    """2.5/s cannot be honoured in every 1-s window with 3 sends: it is 2 per (1 + margin)."""
    rl = limiter(client, prefix)
    got = slots(rl, account(max_requests_per_second=rate), 2, T0, max_wait_s=3.0)
    assert got[1] - got[0] == pytest.approx(spacing, abs=1e-6)  # type: ignore[operator]


def test_server_clock_is_used_without_now(client: redis.Redis[bytes], prefix: str) -> None:
    rl = limiter(client, prefix)
    before = rl.server_time()
    r = rl.reserve(account(max_requests_per_second=10), ["+1"])
    assert r.send_at is not None
    assert before <= r.send_at <= rl.server_time()
    assert r.delay_s == 0.0


def test_scripts_reload_after_script_flush(client: redis.Redis[bytes], prefix: str) -> None:
    rl = limiter(client, prefix)
    client.script_flush()
    assert rl.reserve(account(max_requests_per_second=10), ["+1"], now_ms=T0).admitted == (0,)


def test_the_clock_is_read_in_one_prelude() -> None:
    """A script whose header says ARGV[1] is the clock runs behind _prelude.lua, and no script
    file reads the clock itself (the rule is written once)."""
    lua = files("teledispatch.worker.ratelimit").joinpath("lua")
    prelude = lua.joinpath("_prelude.lua").read_text(encoding="utf-8")
    names = [p.name.removesuffix(".lua") for p in lua.iterdir() if p.name[0] != "_"]
    clocked = []
    for name in names:
        text = lua.joinpath(f"{name}.lua").read_text(encoding="utf-8")
        assert "TIME" not in text.split("]]", 1)[1], name
        if "`now`, set by _prelude.lua" in text:
            clocked.append(name)
            assert lua_source(name) == prelude + "\n" + text
        else:
            assert lua_source(name) == text
    assert sorted(clocked) == [
        "defer",
        "depart",
        "park_pop",
        "recipient_depart",
        "reserve",
        "slot_acquire",
        "throttle",
    ]


# --- messages per second: exact log, batches land at once -----------------------------------


def test_batch_larger_than_message_rate_is_cut(client: redis.Redis[bytes], prefix: str) -> None:
    rl = limiter(client, prefix)
    acct = account(max_messages_per_second=100)
    phones = [f"+{i}" for i in range(150)]
    r = rl.reserve(acct, phones, now_ms=T0)
    assert r.admitted == tuple(range(100))
    assert r.retry == tuple(range(100, 150))
    assert r.send_at == pytest.approx(S0)
    assert r.wait_s == pytest.approx(0.02, abs=1e-6)  # next 50 fit at T0 + 1.02 s
    r2 = rl.reserve(acct, phones[100:], now_ms=T0 + 20)
    assert r2.admitted == tuple(range(50))
    assert r2.send_at == pytest.approx(S0 + 1.02)


def test_batches_share_the_message_window(client: redis.Redis[bytes], prefix: str) -> None:
    rl = limiter(client, prefix)
    acct = account(max_messages_per_second=100)
    sixty = [f"+{i}" for i in range(60)]
    assert rl.reserve(acct, sixty, now_ms=T0).send_at == pytest.approx(S0)
    # 60 + 60 > 100 in one window: 40 fill this slot, 20 wait until the first 60 leave it.
    r = rl.reserve(acct, sixty, now_ms=T0)
    assert (len(r.admitted), len(r.retry)) == (40, 20)
    assert r.send_at == pytest.approx(S0)
    assert r.wait_s == pytest.approx(0.02, abs=1e-6)
    r = rl.reserve(acct, ["+x"], now_ms=T0)
    assert (r.admitted, r.retry) == ((), (0,))
    assert r.wait_s == pytest.approx(0.02, abs=1e-6)
    r = rl.reserve(acct, sixty[:20], now_ms=T0 + 20)
    assert len(r.admitted) == 20
    assert r.send_at == pytest.approx(S0 + 1.02)
    # A larger horizon reaches the slot where the second 100 fit.
    r = rl.reserve(acct, sixty, now_ms=T0 + 20, max_wait_s=1.5)
    assert len(r.admitted) == 60
    assert r.send_at == pytest.approx(S0 + 2.04)


def test_a_batch_the_message_budget_refuses_says_when_one_fits(
    client: redis.Redis[bytes], prefix: str
) -> None:
    """The state's ``mnext`` (read by ``bookings.next_slot_in``): an account limited by
    messages/s alone must not claim again before a full batch fits."""
    rl = limiter(client, prefix)
    acct = account(max_messages_per_second=100)
    state = rl.keys(acct).state
    assert len(rl.reserve(acct, [f"+{i}" for i in range(100)], now_ms=T0).admitted) == 100
    assert client.hget(state, "mnext") is None  # nothing was refused yet
    r = rl.reserve(acct, ["+x"], now_ms=T0 + 5)
    assert (r.admitted, r.retry) == ((), (0,))
    assert int(client.hget(state, "mnext") or 0) == round((S0 + 1.02) * 1_000_000)


def test_partial_batch_fills_the_room_left_within_the_horizon(
    client: redis.Redis[bytes], prefix: str
) -> None:
    rl = limiter(client, prefix)
    acct = account(max_messages_per_second=10)
    rl.reserve(acct, [f"+{i}" for i in range(7)], now_ms=T0)
    r = rl.reserve(acct, [f"+{i}" for i in range(5)], now_ms=T0 + 100)
    assert (r.admitted, r.retry) == ((0, 1, 2), (3, 4))
    assert r.send_at == pytest.approx(S0 + 0.1)


# --- hour / day sliding windows -------------------------------------------------------------


def test_hour_budget_admits_part_and_defers_the_rest(
    client: redis.Redis[bytes], prefix: str
) -> None:
    rl = limiter(client, prefix)
    acct = account(max_messages_per_hour=100)
    assert len(rl.reserve(acct, [f"+a{i}" for i in range(60)], now_ms=T0).admitted) == 60
    half_hour = T0 + 1_800_000
    r = rl.reserve(acct, [f"+b{i}" for i in range(60)], now_ms=half_hour)
    assert r.admitted == tuple(range(40))
    # The 60 sent at T0 sit in the 1-minute bucket [T0, T0+60 s); they count until that bucket
    # is a whole (hour + margin) old.
    due = S0 + 60 + 3600.02
    assert r.deferred == {i: pytest.approx(due, abs=1e-6) for i in range(40, 60)}
    early = rl.reserve(acct, ["+c"], now_ms=due * 1000 - 1000)
    assert early.admitted == ()
    assert early.deferred[0] == pytest.approx(due, abs=1e-6)
    assert len(rl.reserve(acct, [f"+c{i}" for i in range(60)], now_ms=due * 1000).admitted) == 60


def test_day_budget_defers_until_the_day_window_slides(
    client: redis.Redis[bytes], prefix: str
) -> None:
    rl = limiter(client, prefix)
    acct = account(max_messages_per_day=3, max_messages_per_hour=10)
    rl.reserve(acct, ["+1", "+2"], now_ms=T0)
    r = rl.reserve(acct, ["+3", "+4", "+5"], now_ms=T0 + 7_200_000)
    assert r.admitted == (0,)
    due = S0 + 1440 + 86_400.02  # the 24-minute bucket of T0 leaves the day window
    assert r.deferred == {1: pytest.approx(due, abs=1e-6), 2: pytest.approx(due, abs=1e-6)}


# --- per-recipient caps ----------------------------------------------------------------------


VOLC_CAPS = [(3, "5m"), (6, "10m"), (10, "24h")]


def test_recipient_caps_defer_exactly_the_capped_numbers(
    client: redis.Redis[bytes], prefix: str
) -> None:
    rl = limiter(client, prefix)
    acct = account(recipient_caps=VOLC_CAPS)
    for k in range(3):
        assert rl.reserve(acct, ["+A"], now_ms=T0 + k * 1000).admitted == (0,)
    r = rl.reserve(acct, ["+B", "+A", "+C"], now_ms=T0 + 3000)
    assert r.admitted == (0, 2)  # the capped number does not hold the batch back
    # 3 per 5 min: the first send (T0) must leave the window of 300 s + 20 ms margin + 1 ms.
    assert r.deferred == {1: pytest.approx(S0 + 300.021, abs=1e-6)}
    assert r.retry == ()


def test_recipient_daily_cap_binds_after_short_windows_pass(
    client: redis.Redis[bytes], prefix: str
) -> None:
    rl = limiter(client, prefix)
    acct = account(recipient_caps=VOLC_CAPS)
    sent = [0, 1, 2, 301, 302, 303, 602, 603, 604, 905]  # 3 per 5 min, 10 within a day
    for sec in sent:
        assert rl.reserve(acct, ["+A"], now_ms=T0 + sec * 1000).admitted == (0,)
    r = rl.reserve(acct, ["+A"], now_ms=T0 + 1300_000)  # 5- and 10-minute caps allow it
    assert r.deferred == {0: pytest.approx(S0 + 86_400.021, abs=1e-6)}
    assert rl.reserve(acct, ["+A"], now_ms=T0 + 86_400_020).admitted == ()
    assert rl.reserve(acct, ["+A"], now_ms=T0 + 86_400_021).admitted == (0,)


def test_repeated_number_in_one_batch_counts_each_time(
    client: redis.Redis[bytes], prefix: str
) -> None:
    rl = limiter(client, prefix)
    acct = account(recipient_caps=[(2, "1h")])
    r = rl.reserve(acct, ["+A", "+B", "+A", "+A"], now_ms=T0)
    assert r.admitted == (0, 1, 2)
    assert set(r.deferred) == {3}


def test_deferred_numbers_are_not_charged(client: redis.Redis[bytes], prefix: str) -> None:
    """Only admitted recipients use budget: a deferred one leaves the hour budget intact."""
    rl = limiter(client, prefix)
    acct = account(recipient_caps=[(1, "1h")], max_messages_per_hour=2)
    rl.reserve(acct, ["+A"], now_ms=T0)
    assert rl.reserve(acct, ["+A"], now_ms=T0 + 1).admitted == ()
    assert rl.reserve(acct, ["+B"], now_ms=T0 + 2).admitted == (0,)


# --- listening to the provider --------------------------------------------------------------


def test_throttle_halves_the_rate_once_per_cooldown_and_recovers(
    client: redis.Redis[bytes], prefix: str
) -> None:
    rl = limiter(client, prefix)
    acct = account(max_requests_per_second=10)
    assert rl.report_throttled(acct, now_ms=T0) == pytest.approx(0.5)
    # Every request in flight fails together: their reports are one episode (the factor only
    # shows 0.5 s of recovery, +0.02 of the configured rate per second).
    assert rl.report_throttled(acct, now_ms=T0 + 500) == pytest.approx(0.51)
    got = slots(rl, acct, 2, T0 + 500)
    assert got[1] - got[0] == pytest.approx(1.02 / 5, abs=1e-6)  # type: ignore[operator]
    assert rl.report_throttled(acct, now_ms=T0 + 1000) == pytest.approx(0.26)
    assert rl.throttle_factor(acct, now_ms=T0 + 11_000) == pytest.approx(0.46)
    assert rl.throttle_factor(acct, now_ms=T0 + 37_000) < 1.0
    assert rl.throttle_factor(acct, now_ms=T0 + 38_000) == 1.0
    late = T0 + 60_000
    assert slots(rl, acct, 2, late) == pytest.approx([late / 1000, late / 1000 + 0.102], abs=1e-6)


def test_throttle_never_goes_below_the_floor(client: redis.Redis[bytes], prefix: str) -> None:
    rl = limiter(client, prefix, throttle_floor=0.1)
    acct = account(max_messages_per_second=50)
    factors = [rl.report_throttled(acct, now_ms=T0 + k * 1000) for k in range(6)]
    assert factors[-1] == pytest.approx(0.1)
    # 50 * 0.1 = 5 messages per (1 s + margin)
    r = rl.reserve(acct, [f"+{i}" for i in range(10)], now_ms=T0 + 5000)
    assert len(r.admitted) == 5


def test_retry_after_holds_every_send(client: redis.Redis[bytes], prefix: str) -> None:
    rl = limiter(client, prefix)
    acct = account(max_requests_per_second=10)
    rl.report_throttled(acct, retry_after_s=0.5, now_ms=T0)
    assert rl.reserve(acct, ["+1"], now_ms=T0).send_at == pytest.approx(S0 + 0.5)
    r = rl.reserve(acct, ["+1"], now_ms=T0, max_wait_s=0.1)
    assert r.admitted == ()
    # The report also halved the rate: the next slot is 1.02 / 5 s after the first.
    assert r.wait_s == pytest.approx(0.5 + 0.204 - 0.1, abs=1e-6)


def test_provider_cap_defers_the_number_for_its_window(
    client: redis.Redis[bytes], prefix: str
) -> None:
    rl = limiter(client, prefix)
    acct = account(recipient_caps=[(5, "1h")])
    rl.reserve(acct, ["+A"], now_ms=T0)
    assert rl.defer_recipient(acct, "+A", now_ms=T0 + 1000) == pytest.approx(S0 + 3601)
    # The block is added to the number's send history, which is kept.
    assert client.get(rl.keys(acct).recipient("+A")) == f"{T0 + 3_601_000} {T0}".encode()
    r = rl.reserve(acct, ["+A", "+B"], now_ms=T0 + 2000)
    assert r.admitted == (1,)
    assert r.deferred == {0: pytest.approx(S0 + 3601)}
    assert rl.reserve(acct, ["+A"], now_ms=T0 + 3_600_999).admitted == ()
    assert rl.reserve(acct, ["+A"], now_ms=T0 + 3_601_000).admitted == (0,)


def test_provider_cap_without_configured_caps(client: redis.Redis[bytes], prefix: str) -> None:
    rl = limiter(client, prefix)
    acct = account()
    rl.defer_recipient(acct, "+A", 60, now_ms=T0)
    assert set(rl.reserve(acct, ["+A", "+B"], now_ms=T0 + 1).deferred) == {0}
    assert rl.reserve(acct, ["+A"], now_ms=T0 + 60_000).admitted == (0,)


# --- concurrency slots ----------------------------------------------------------------------


def test_concurrency_slots_expire_and_release(client: redis.Redis[bytes], prefix: str) -> None:
    rl = limiter(client, prefix)
    acct = account(concurrency=2)
    a = rl.acquire_slot(acct, lease_s=10, now_ms=T0)
    b = rl.acquire_slot(acct, lease_s=10, now_ms=T0)
    assert a and b and a != b
    assert rl.acquire_slot(acct, lease_s=10, now_ms=T0 + 1) is None
    assert rl.release_slot(acct, a)
    c = rl.acquire_slot(acct, lease_s=10, now_ms=T0 + 2)
    assert c is not None
    assert client.llen(rl.keys(acct).slots_wake) == 1  # a waiter would have been woken
    # b's worker crashed: its lease runs out at T0 + 10 s and the slot is free again.
    assert rl.acquire_slot(acct, lease_s=10, now_ms=T0 + 9_999) is None
    assert rl.acquire_slot(acct, lease_s=10, now_ms=T0 + 10_000) is not None
    assert not rl.release_slot(acct, b)


def test_renewing_a_lease_keeps_the_slot(client: redis.Redis[bytes], prefix: str) -> None:
    rl = limiter(client, prefix)
    acct = account(concurrency=1)
    tok = rl.acquire_slot(acct, lease_s=5, now_ms=T0)
    assert rl.acquire_slot(acct, lease_s=5, token=tok, now_ms=T0 + 4000) == tok
    assert rl.acquire_slot(acct, lease_s=5, now_ms=T0 + 6000) is None


def test_acquire_waits_at_most_its_timeout(client: redis.Redis[bytes], prefix: str) -> None:
    rl = limiter(client, prefix)
    acct = account(concurrency=1)
    assert rl.acquire_slot(acct, lease_s=30) is not None
    assert rl.acquire_slot(acct, lease_s=30, timeout_s=0.05) is None


def test_unlimited_concurrency_needs_no_redis(client: redis.Redis[bytes], prefix: str) -> None:
    rl = limiter(client, prefix)
    assert rl.acquire_slot(account(), lease_s=5) == UNLIMITED
    assert rl.release_slot(account(), UNLIMITED)
    assert list(client.scan_iter(match=f"{prefix}:*")) == []


# --- key layout -----------------------------------------------------------------------------


def test_every_key_shares_the_account_slot_and_expires(
    client: redis.Redis[bytes], prefix: str
) -> None:
    from redis.crc import key_slot

    rl = limiter(client, prefix)
    acct = account(
        max_requests_per_second=5,
        max_messages_per_second=50,
        max_messages_per_hour=1000,
        max_messages_per_day=5000,
        recipient_caps=VOLC_CAPS,
        concurrency=2,
    )
    rl.reserve(acct, ["+1", "+2"], now_ms=T0)
    rl.report_throttled(acct, now_ms=T0)
    rl.defer_recipient(acct, "+3", now_ms=T0)
    tok = rl.acquire_slot(acct, lease_s=5, now_ms=T0)
    assert tok is not None
    rl.release_slot(acct, tok)
    keys = list(client.scan_iter(match=f"{prefix}:*"))
    assert len(keys) == 8  # state mlog hour day r:+1 r:+2 r:+3 slots:wake (slots now empty)
    assert len({key_slot(k) for k in keys}) == 1
    assert all(client.pttl(k) > 0 for k in keys)


def test_braces_in_account_names_are_refused(client: redis.Redis[bytes], prefix: str) -> None:
    with pytest.raises(ValueError, match="braces"):
        limiter(client, prefix).keys(account().model_copy(update={"name": "a{b}"}))


# --- sleeping until the slot ----------------------------------------------------------------


class FakeClock:
    def __init__(self, oversleep: float = 0.0) -> None:
        self.t = 100.0
        self.oversleep = oversleep
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.t += seconds + self.oversleep


def reservation(send_at: float | None) -> Reservation:
    return Reservation((0,), {}, (), send_at, 0.0, server_now=50.0, local_now=100.0)


def test_wait_for_slot_sleeps_the_relative_delay() -> None:
    clock = FakeClock()
    assert reservation(50.25).wait_for_slot(sleep=clock.sleep, clock=clock)
    assert clock.slept == [pytest.approx(0.25)]


def test_wait_for_slot_refuses_a_late_wake() -> None:
    clock = FakeClock(oversleep=0.011)
    assert not reservation(50.25).wait_for_slot(sleep=clock.sleep, clock=clock)
    assert not reservation(None).wait_for_slot(sleep=clock.sleep, clock=clock)
