"""The console's read of an account's rate in use parses what the departure gate writes."""

from __future__ import annotations

import fakeredis

from teledispatch.config import parse_config
from teledispatch.rate_use import KEY_PREFIX, rate_use
from teledispatch.worker.ratelimit.limiter import RateLimiter


def test_rate_use_counts_the_gates_departures_of_the_last_second() -> None:
    client = fakeredis.FakeRedis()
    table = {"channel": "nxcloud.sms", "base_url": "http://nx.test", "max_messages_per_second": 100}
    account = parse_config({"accounts": {"nx": table}})["nx"]
    limiter = RateLimiter(client, key_prefix=KEY_PREFIX)
    first = limiter.gate.depart(account, 7)
    second = limiter.gate.depart(account, 5)
    assert first is not None and second is not None
    first.written()  # one confirmed, one still pending: both are leaving now
    use = rate_use(client, "nx")
    assert (use.requests, use.messages) == (2, 12)
    assert rate_use(client, "other").messages == 0
