"""A request is marked in flight while it is under way (its slot wait included), and the mark
is gone once it is over, sent or not."""

from __future__ import annotations

from typing import Any

import pytest

from teledispatch.producer import submit as enqueue_mod
from teledispatch.producer.submit import enqueue_stream
from teledispatch.wakeups import in_flight, inflight_key
from teledispatch.worker.context import Context
from teledispatch.worker.dispatch import dispatch


@pytest.fixture(autouse=True)
def no_wake(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(enqueue_mod, "wake", lambda cfg, account, delay: None)


def test_the_mark_spans_the_request(ctx: Context, monkeypatch: pytest.MonkeyPatch) -> None:
    account = ctx.settings.account("nx")
    seen: list[bool] = []
    real_send = ctx.transport.send

    def send(*args: Any, **kwargs: Any) -> Any:
        seen.append(in_flight(ctx.redis, account))
        return real_send(*args, **kwargs)

    monkeypatch.setattr(ctx.transport, "send", send)
    enqueue_stream("nx", [{"phone": "+8613800130000"}], defaults={"content": "x"}, cfg=ctx.settings)
    assert dispatch(ctx, "nx").counts == {"sent": 1}
    assert seen == [True]
    assert not in_flight(ctx.redis, account)
    assert ctx.redis.zcard(inflight_key("nx")) == 0
