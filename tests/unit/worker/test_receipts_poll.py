"""USpeedo receipt polling against a stub transport: query shape, mapping, bounds, re-polls."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import fakeredis
import pytest
import sqlalchemy as sa

from teledispatch.channels.base import HttpRequest
from teledispatch.channels.uspeedo.receipts import build_receipt_query, parse_receipts
from teledispatch.db.engine import get_engine
from teledispatch.db.tables import create_schema, messages_table
from teledispatch.errors import RejectedError, RetryableProviderError
from teledispatch.worker.context import Context
from teledispatch.worker.receipts import REPOLL_S, poll_account
from teledispatch.worker.testing import MockTransport
from teledispatch.worker.transport import HttpResponse
from tests.support import make_settings

NOW = 1_800_000_000.0


class Carrier:
    """Answers USMSSendReceipt from a table of (session, phone) → ReceiptResult."""

    def __init__(self) -> None:
        self.results: dict[tuple[str, str], str] = {}
        self.status = 200

    def __call__(self, request: HttpRequest) -> HttpResponse:
        ids = [v for k, v in parse_qsl(urlsplit(request.url).query) if k == "id"]
        assert len(ids) <= 100
        if self.status != 200:
            return HttpResponse(self.status, {}, b'{"RetCode": 215400}')
        data = [
            {
                "SessionNo": s,
                "ReceiptSet": [
                    {"Phone": p, "ReceiptResult": r, "ReceiptCode": r.upper(), "ReceiptDesc": r}
                    for (sess, p), r in self.results.items()
                    if sess == s
                ],
            }
            for s in ids
        ]
        return HttpResponse(200, {}, json.dumps({"RetCode": 0, "Data": data}).encode())


@pytest.fixture
def carrier() -> Carrier:
    return Carrier()


@pytest.fixture
def uctx(db_url: str, carrier: Carrier) -> Iterator[Context]:
    cfg = make_settings(db_url, channel="uspeedo.sms", base_url="http://us.test")
    engine = get_engine(db_url)
    create_schema(engine)
    yield Context(
        settings=cfg,
        engine=engine,
        redis=fakeredis.FakeRedis(),
        transport=MockTransport(carrier),
        publish=lambda *a: None,
    )
    engine.dispose()


def _insert(ctx: Context, mid: str, phone: str, session: str | None, **extra: Any) -> None:
    row = {
        "id": mid,
        "job_id": "j",
        "seq": 0,
        "account": "nx",
        "channel": "uspeedo.sms",
        "phone": phone,
        "payload": "{}",
        "status": "sent",
        "provider_id": session,
        "due_at": NOW - 1000,
        "created_at": NOW - 1000,
        "updated_at": NOW - 1000,
        "sent_at": NOW - 1000,
        **extra,
    }
    with ctx.engine.begin() as conn:
        conn.execute(sa.insert(messages_table), [row])


def _row(ctx: Context, mid: str) -> Any:
    with ctx.engine.connect() as conn:
        return conn.execute(sa.select(messages_table).where(messages_table.c.id == mid)).one()


def test_receipt_query_shape(uctx: Context) -> None:
    account = uctx.settings.accounts["nx"]
    req = build_receipt_query(account, ["s1", "s 2"])
    assert req.method == "GET"
    assert req.url == "http://us.test/api/v1/usms/USMSSendReceipt?id=s1&id=s+2"
    assert req.headers["Authorization"] == "Basic " + base64.b64encode(b"ak:sk").decode()
    with pytest.raises(ValueError):
        build_receipt_query(account, [f"s{i}" for i in range(101)])
    with pytest.raises(ValueError):
        build_receipt_query(account, [])


def test_parse_receipts_errors() -> None:
    with pytest.raises(RetryableProviderError):
        parse_receipts(503, b"")
    with pytest.raises(RejectedError):
        parse_receipts(200, b'{"RetCode": 215397, "Message": "Missing parameter [id]"}')
    doc = {"RetCode": 0, "Data": [{"SessionNo": "s", "ReceiptSet": [{"Phone": "+44 7700"}]}, 5]}
    assert list(parse_receipts(200, json.dumps(doc).encode())) == [("s", "447700")]


def test_poll_maps_receipts_and_repolls_unknown(uctx: Context, carrier: Carrier) -> None:
    _insert(uctx, "ok", "+447700900001", "s1")
    _insert(uctx, "bad", "+447700900002", "s1")
    _insert(uctx, "wait", "+447700900003", "s2")
    _insert(uctx, "joined", "+447700900004", "s3,s4")  # owner of the ids unknown
    _insert(uctx, "young", "+447700900005", "s5", sent_at=NOW - 10)
    _insert(uctx, "final", "+447700900006", "s1", status="delivered")
    carrier.results = {
        ("s1", "447700900001"): "Success",
        ("s1", "447700900002"): "Fail",
        ("s2", "447700900003"): "Unknow",
        ("s4", "447700900004"): "Success",
        ("s5", "447700900005"): "Success",
        ("s1", "447700900006"): "Fail",
    }
    report = poll_account(uctx, uctx.settings.accounts["nx"], NOW, delay_s=60)
    assert (report.asked, report.requests, report.settled, report.pending) == (4, 1, 3, 1)
    assert _row(uctx, "ok").status == "delivered"
    bad = _row(uctx, "bad")
    assert (bad.status, bad.error_code, bad.final_at) == ("undelivered", "Fail/FAIL", NOW)
    assert _row(uctx, "joined").status == "delivered"
    assert _row(uctx, "young").status == "sent"  # too recent to ask about
    assert _row(uctx, "final").status == "delivered"  # never rewritten
    wait = _row(uctx, "wait")
    assert (wait.status, wait.due_at) == ("sent", NOW + REPOLL_S)

    # Not due again until REPOLL_S has passed; then the carrier has answered.
    assert poll_account(uctx, uctx.settings.accounts["nx"], NOW + 1, delay_s=60).asked == 0
    carrier.results[("s2", "447700900003")] = "Success"
    later = poll_account(uctx, uctx.settings.accounts["nx"], NOW + REPOLL_S, delay_s=60)
    assert later.settled == 2  # "wait", and "young" now old enough
    assert _row(uctx, "wait").status == "delivered"


def test_poll_is_bounded_and_chunked(uctx: Context, carrier: Carrier) -> None:
    transport = uctx.transport
    assert isinstance(transport, MockTransport)
    for i in range(250):
        _insert(uctx, f"m{i:03d}", f"+4477009{i:05d}", f"s{i}")
    report = poll_account(uctx, uctx.settings.accounts["nx"], NOW, delay_s=60, limit=230)
    assert report.asked == 230 and report.requests == 3
    assert [len(parse_qsl(urlsplit(r.url).query)) for r in transport.requests] == [100, 100, 30]
    # Every one still Unknow to the carrier (no results): all pushed back, none settled.
    assert report.pending == 230 and report.settled == 0


def test_failed_query_settles_nothing(uctx: Context, carrier: Carrier) -> None:
    _insert(uctx, "m", "+447700900001", "s1")
    carrier.status = 503
    report = poll_account(uctx, uctx.settings.accounts["nx"], NOW, delay_s=60)
    assert report.settled == 0
    assert _row(uctx, "m").status == "sent"
