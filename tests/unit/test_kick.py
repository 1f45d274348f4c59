"""Wake-ups: one per account per linger, and a wake for now is never held back by one for later."""

from __future__ import annotations

from typing import Any

import fakeredis

from teledispatch.config import parse_config
from teledispatch.wakeups import kick


def test_a_wake_for_now_is_not_held_back_by_a_lingering_one() -> None:
    account = parse_config(
        {"accounts": {"nx": {"channel": "nxcloud.sms", "base_url": "http://x", "linger_ms": 250}}}
    )["nx"]
    client = fakeredis.FakeRedis()
    sent: list[tuple[str, list[Any], str, float]] = []

    def send(*task: Any) -> None:
        sent.append(task)

    assert kick(client, send, account)  # an OTP: lingers 250 ms
    assert not kick(client, send, account)  # a second OTP shares that wake
    assert kick(client, send, account, 0.0)  # a full batch: at once
    assert not kick(client, send, account, 0.0)  # ... once per 50 ms
    assert [t[3] for t in sent] == [0.25, 0.0]
