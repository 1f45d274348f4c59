"""Singles leave at once on an idle account: the linger is waited only while a request of the
account is in flight (``teledispatch.wakeups``)."""

from __future__ import annotations

import time
from typing import Any

import fakeredis

from teledispatch.config import parse_config
from teledispatch.wakeups import flight_ended, flight_started, in_flight, inflight_key, kick

ACCOUNT = parse_config(
    {"accounts": {"nx": {"channel": "nxcloud.sms", "base_url": "http://x", "linger_ms": 250}}}
)["nx"]


def recorder() -> tuple[list[float], Any]:
    delays: list[float] = []

    def send(name: str, args: list[Any], queue: str, countdown: float) -> None:
        delays.append(countdown)

    return delays, send


def test_an_idle_account_wakes_a_single_at_once() -> None:
    client = fakeredis.FakeRedis()
    delays, send = recorder()
    assert kick(client, send, ACCOUNT, 0.25, linger_if_busy=True)
    assert not kick(client, send, ACCOUNT, 0.25, linger_if_busy=True)  # shares that wake
    assert delays == [0.0]


def test_singles_behind_a_request_in_flight_share_the_next_one() -> None:
    client = fakeredis.FakeRedis()
    delays, send = recorder()
    flight_started(client, ACCOUNT, "tok:", time.time() + 20)
    assert in_flight(client, ACCOUNT)
    assert kick(client, send, ACCOUNT, 0.25, linger_if_busy=True)
    assert not kick(client, send, ACCOUNT, 0.25, linger_if_busy=True)
    assert delays == [0.25]
    assert flight_ended(client, ACCOUNT, "tok:")  # a single waits: wake the account now
    assert not in_flight(client, ACCOUNT)


def test_the_end_of_a_request_wakes_only_when_a_single_waited() -> None:
    client = fakeredis.FakeRedis()
    flight_started(client, ACCOUNT, "tok:", time.time() + 20)
    assert not flight_ended(client, ACCOUNT, "tok:")
    delays, send = recorder()
    flight_started(client, ACCOUNT, "a:", time.time() + 20)
    flight_started(client, ACCOUNT, "b:", time.time() + 20)
    kick(client, send, ACCOUNT, 0.25, linger_if_busy=True)
    assert delays == [0.25]  # the linger is only the fallback now
    assert flight_ended(client, ACCOUNT, "a:")
    assert not flight_ended(client, ACCOUNT, "b:")  # one wake for the singles is enough


def test_a_dead_senders_mark_stops_counting_at_its_deadline() -> None:
    client = fakeredis.FakeRedis()
    flight_started(client, ACCOUNT, "dead:", time.time() - 1)  # its deadline has passed
    assert not in_flight(client, ACCOUNT)
    flight_started(client, ACCOUNT, "live:", time.time() + 20)
    # The later mark dropped the stale one.
    assert client.zrange(inflight_key("nx"), 0, -1) == [b"live:"]


def test_without_the_flag_a_linger_is_always_waited() -> None:
    client = fakeredis.FakeRedis()
    delays, send = recorder()
    assert kick(client, send, ACCOUNT, 0.25)
    assert delays == [0.25]
