"""A request's departure entry is moved to its answer's head: the send passes the time from
its write to the head (the transport's stamp, else the end of the send), once."""

from __future__ import annotations

import pytest

from teledispatch.channels.base import HttpRequest
from teledispatch.producer import submit as enqueue_mod
from teledispatch.producer.submit import enqueue_stream
from teledispatch.worker.context import Context
from teledispatch.worker.dispatch import dispatch
from teledispatch.worker.ratelimit import Departure
from teledispatch.worker.testing import MockTransport
from teledispatch.worker.transport import HttpResponse
from tests.support import make_settings, nx_ok


@pytest.fixture(autouse=True)
def no_wake(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(enqueue_mod, "wake", lambda cfg, account, delay: None)


@pytest.mark.parametrize("stamped", [True, False])
def test_the_send_reports_write_to_head_once(
    ctx: Context, monkeypatch: pytest.MonkeyPatch, stamped: bool
) -> None:
    ctx.settings = make_settings(ctx.settings.database_url, max_requests_per_second=10)
    calls: list[tuple[float | None, float]] = []
    answered = Departure.answered

    def spy(self: Departure, after_write_s: float) -> None:
        calls.append((self.lateness_s, after_write_s))
        answered(self, after_write_s)

    def answer(request: HttpRequest) -> HttpResponse:
        response = nx_ok(request)
        if not stamped:
            return response
        # The head stamped later than any real one could be: the send must pass it through.
        return HttpResponse(response.status, response.headers, response.body, head_at=1e9)

    monkeypatch.setattr(Departure, "answered", spy)
    ctx.transport = MockTransport(answer)
    enqueue_stream("nx", [{"phone": "8613800130000"}], defaults={"content": "x"}, cfg=ctx.settings)
    assert dispatch(ctx, "nx").requests == 1
    ((lateness, after_write),) = calls
    assert lateness is not None  # written() came first
    assert after_write > 1e8 if stamped else 0 <= after_write < 5
