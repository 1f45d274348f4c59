"""A request is marked in flight while it is under way, and the mark is gone once it is over
(what makes singles linger to share the next request): an unpaced account's from its write,
since nothing stands between its claim and its write; a paced account's from before its slot
wait, which singles should share."""

from __future__ import annotations

from typing import Any

import pytest

from teledispatch import wakeups
from teledispatch.channels.base import HttpRequest
from teledispatch.db import messages as repo
from teledispatch.producer import submit as enqueue_mod
from teledispatch.producer.submit import enqueue_stream
from teledispatch.worker.context import Context
from teledispatch.worker.dispatch import dispatch
from teledispatch.worker.testing import MockTransport
from teledispatch.worker.transport import HttpResponse
from tests.support import make_settings, nx_ok


@pytest.fixture(autouse=True)
def no_wake(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(enqueue_mod, "wake", lambda cfg, account, delay: None)


def _watch(ctx: Context, monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, bool]]:
    """(moment, in flight?) at the departure mark, at the write, and after the dispatch."""
    seen: list[tuple[str, bool]] = []
    account = ctx.settings.account("nx")
    mark = repo.mark_departing

    def marking(*args: Any) -> bool:
        seen.append(("mark", wakeups.in_flight(ctx.redis, account)))
        return mark(*args)

    def answer(request: HttpRequest) -> HttpResponse:
        seen.append(("write", wakeups.in_flight(ctx.redis, account)))
        return nx_ok(request)

    monkeypatch.setattr(repo, "mark_departing", marking)
    ctx.transport = MockTransport(answer)
    return seen


def test_an_unpaced_request_is_in_flight_from_its_write(
    ctx: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = _watch(ctx, monkeypatch)
    enqueue_stream("nx", [{"phone": "8613800130000"}], defaults={"content": "x"}, cfg=ctx.settings)
    assert dispatch(ctx, "nx").requests == 1
    assert seen == [("mark", False), ("write", True)]
    assert not wakeups.in_flight(ctx.redis, ctx.settings.account("nx"))
    assert ctx.redis.zcard(wakeups.inflight_key("nx")) == 0


def test_a_paced_request_is_in_flight_before_its_slot(
    ctx: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx.settings = make_settings(ctx.settings.database_url, concurrency=2)
    seen = _watch(ctx, monkeypatch)
    enqueue_stream("nx", [{"phone": "8613800130000"}], defaults={"content": "x"}, cfg=ctx.settings)
    assert dispatch(ctx, "nx").requests == 1
    assert seen == [("mark", True), ("write", True)]
    assert not wakeups.in_flight(ctx.redis, ctx.settings.account("nx"))
    assert ctx.redis.zcard(wakeups.inflight_key("nx")) == 0
