"""A batch that does not leave takes its recipients' stamps back (recipient_refund.lua): tried
again, a message must not be deferred by its own reservation, and the cap still holds."""

from __future__ import annotations

import redis

from teledispatch.config import AccountConfig, parse_config
from teledispatch.worker.ratelimit import RateLimiter

T0 = 1_700_000_000_000  # ms
PHONE = "+8613800000001"


def account() -> AccountConfig:
    table = {
        "channel": "nxcloud.sms",
        "base_url": "http://x",
        "max_requests_per_second": 2,
        "recipient_caps": [{"count": 1, "window_s": 60}],
    }
    return parse_config({"accounts": {"a": table}})["a"]


def test_first_of_two_to_one_number_goes_the_second_waits(
    client: redis.Redis[bytes], prefix: str
) -> None:
    acct = account()
    rl = RateLimiter(client, key_prefix=prefix, jitter_s=0.02)
    res = rl.reserve(acct, [PHONE, PHONE], max_wait_s=3.0, now_ms=T0)
    assert res.admitted == (0,)
    assert set(res.deferred) == {1} and res.deferred[1] * 1000 >= T0 + 60_000
    check = rl.depart_recipients(acct, [PHONE], res.send_at, now_ms=T0)
    assert check.refused == {}


def test_a_batch_given_back_is_not_deferred_by_its_own_stamp(
    client: redis.Redis[bytes], prefix: str
) -> None:
    """Reserved, then given back before its departure (a late wake, a lost lease): reserved
    again, it is admitted, not deferred for the whole window."""
    acct = account()
    rl = RateLimiter(client, key_prefix=prefix, jitter_s=0.02)
    first = rl.reserve(acct, [PHONE, PHONE], max_wait_s=3.0, now_ms=T0)
    assert first.admitted == (0,)
    assert rl.refund_recipients(acct, [PHONE], first.send_at) == 1
    again = rl.reserve(acct, [PHONE], max_wait_s=3.0, now_ms=T0 + 1000)
    assert again.admitted == (0,) and not again.deferred
    # Sent this time: the number's next message waits for the window (the cap holds).
    check = rl.depart_recipients(acct, [PHONE], again.send_at, now_ms=T0 + 1000)
    assert check.refused == {}
    check.departure.written()
    nxt = rl.reserve(acct, [PHONE], max_wait_s=3.0, now_ms=T0 + 2000)
    assert not nxt.admitted and nxt.deferred[0] * 1000 >= T0 + 61_000


def test_a_departure_granted_but_not_written_is_taken_back(
    client: redis.Redis[bytes], prefix: str
) -> None:
    acct = account()
    rl = RateLimiter(client, key_prefix=prefix, jitter_s=0.02)
    res = rl.reserve(acct, [PHONE], max_wait_s=3.0, now_ms=T0)
    check = rl.depart_recipients(acct, [PHONE], res.send_at, now_ms=T0)
    assert check.refused == {}
    assert rl.refund_recipients(acct, [PHONE], res.send_at, check.departure) == 1
    check.departure.written()  # the send path's release: a no-op once taken back
    again = rl.reserve(acct, [PHONE], max_wait_s=3.0, now_ms=T0 + 1000)
    assert again.admitted == (0,)


def test_refund_of_a_sent_message_takes_nothing_back(
    client: redis.Redis[bytes], prefix: str
) -> None:
    """Once confirmed as written, a stamp is the provider's: a late refund must not free it."""
    acct = account()
    rl = RateLimiter(client, key_prefix=prefix, jitter_s=0.02)
    res = rl.reserve(acct, [PHONE], max_wait_s=3.0, now_ms=T0)
    check = rl.depart_recipients(acct, [PHONE], res.send_at, now_ms=T0)
    check.departure.written()
    assert rl.refund_recipients(acct, [PHONE], res.send_at, check.departure) == 0
    nxt = rl.reserve(acct, [PHONE], max_wait_s=3.0, now_ms=T0 + 1000)
    assert not nxt.admitted and 0 in nxt.deferred
