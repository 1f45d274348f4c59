"""Wake-ups: one per account per linger, a wake for now is never held back by one for later,
and at most one unstarted follow-up per account when asked for ``once``."""

from __future__ import annotations

from typing import Any

import fakeredis
import redis

from teledispatch.config import parse_config
from teledispatch.wakeups import flight_ended, flight_started, follow_up, follow_up_started, kick

ACCOUNT = parse_config(
    {"accounts": {"nx": {"channel": "nxcloud.sms", "base_url": "http://x", "linger_ms": 250}}}
)["nx"]


def test_a_wake_for_now_is_not_held_back_by_a_lingering_one() -> None:
    account = ACCOUNT
    client = fakeredis.FakeRedis()
    sent: list[tuple[str, list[Any], str, float]] = []

    def send(*task: Any) -> None:
        sent.append(task)

    assert kick(client, send, account)  # an OTP: lingers 250 ms
    assert not kick(client, send, account)  # a second OTP shares that wake
    assert kick(client, send, account, 0.0)  # a full batch: at once
    assert not kick(client, send, account, 0.0)  # ... once per 50 ms
    assert [t[3] for t in sent] == [0.25, 0.0]


def test_follow_up_once_waits_until_the_last_one_started() -> None:
    client = fakeredis.FakeRedis()
    sent: list[tuple[str, list[Any], str, float]] = []

    def send(*task: Any) -> None:
        sent.append(task)

    assert follow_up(client, send, ACCOUNT, once=True)
    assert not follow_up(client, send, ACCOUNT, once=True)  # one is waiting to start
    assert follow_up(client, send, ACCOUNT)  # ungated: always
    follow_up_started(client, ACCOUNT)
    assert follow_up(client, send, ACCOUNT, once=True)
    assert sent == [("dispatch.nxcloud.sms", ["nx"], "nxcloud.sms", 0)] * 3
    # A follow-up is not a kick: it neither sets nor is held back by a kick's key.
    assert kick(client, send, ACCOUNT, 0.0)


class _Down:
    """A Redis client whose every call fails as an unreachable server does."""

    def pipeline(self, transaction: bool = True) -> Any:
        raise redis.ConnectionError("down")

    def zrem(self, *args: Any) -> int:
        raise redis.ConnectionError("down")


def test_in_flight_marks_are_best_effort_when_redis_is_down() -> None:
    """A send must not crash (nor skip recording its outcomes) because its mark failed."""
    account = ACCOUNT
    flight_started(_Down(), account, "m", until=2e9)  # type: ignore[arg-type]
    flight_ended(_Down(), account, "m")  # type: ignore[arg-type]
