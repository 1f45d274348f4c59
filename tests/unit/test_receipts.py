"""Receipt mapping, callback authentication and the first-final-wins write (SQLite, in process)."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from teledispatch.api.app import create_app
from teledispatch.config import Settings, parse_config
from teledispatch.db.engine import get_engine
from teledispatch.db.tables import create_schema, messages_table
from teledispatch.receipts import (
    Receipt,
    nxcloud_token_ok,
    parse_nxcloud_dr,
    parse_volc_records,
    settle,
    uspeedo_receipt,
    volc_auth_code,
    volc_verified,
)

NX_TOKEN = "nx-dr-token-5b1f0c"
VOLC_TOKEN = "tok-volc-1"


def _settings(db_url: str) -> Settings:
    accounts = parse_config(
        {
            "accounts": {
                "nx": {
                    "channel": "nxcloud.sms",
                    "base_url": "http://nx",
                    "callback_token": NX_TOKEN,
                },
                "nx-open": {"channel": "nxcloud.sms", "base_url": "http://nx"},
                "vms": {
                    "channel": "volc.vms.append",
                    "base_url": "http://v",
                    "callback_token": VOLC_TOKEN,
                },
            }
        }
    )
    return Settings(accounts=accounts, redis_url="redis://unused", database_url=db_url)


@pytest.fixture
def cfg(tmp_path: Path) -> Settings:
    c = _settings(f"sqlite:///{tmp_path / 'r.db'}")
    create_schema(get_engine(c.database_url))
    return c


def _insert(cfg: Settings, mid: str, status: str, *, account: str = "nx", **extra: Any) -> None:
    now = time.time()
    row = {
        "id": mid,
        "job_id": "j",
        "seq": 0,
        "account": account,
        "channel": cfg.accounts[account].channel,
        "phone": "+8613800138000",
        "payload": "{}",
        "status": status,
        "due_at": now,
        "created_at": now,
        "updated_at": now,
        **extra,
    }
    with get_engine(cfg.database_url).begin() as conn:
        conn.execute(sa.insert(messages_table), [row])


def _row(cfg: Settings, mid: str) -> Any:
    with get_engine(cfg.database_url).connect() as conn:
        return conn.execute(sa.select(messages_table).where(messages_table.c.id == mid)).one()


# --- mapping ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "result", "delivered", "code", "text"),
    [
        ("2", "DELIVRD", True, "2/DELIVRD", ""),
        ("5", "UNDELIV", False, "5/UNDELIV", "delivery failed"),
        ("6", "UNDELIV", False, "6/UNDELIV", "rejected by the carrier"),
        ("7", "UNDELIV", False, "7/UNDELIV", "expired before delivery"),
        ("8", "UNDELIV", False, "8/UNDELIV", "deleted by the carrier"),
        ("9", "UNDELIV", False, "9/UNDELIV", "recipient is on a do-not-disturb list"),
        ("10", "UNDELIV", False, "10/UNDELIV", "invalid number"),
        ("11", "UNDELIV", False, "11/UNDELIV", "invalid sender id"),
        ("12", "UNDELIV", False, "12/UNDELIV", "carrier reported an unknown outcome"),
        ("", "DELIVRD", True, "DELIVRD", ""),  # status missing: the result decides
        ("99", "undeliv", False, "99/UNDELIV", "undeliverable"),
    ],
)
def test_nxcloud_dr_mapping(
    status: str, result: str, delivered: bool, code: str, text: str
) -> None:
    dr = parse_nxcloud_dr({"messageid": "job-1", "phone": "8613800138000", "status": status,
                           "result": result})  # fmt: skip
    assert dr is not None
    assert dr.message_id == "job-1"
    assert dr.receipt == Receipt(delivered, code, text)
    assert dr.receipt.status == ("delivered" if delivered else "undelivered")


@pytest.mark.parametrize(
    "fields",
    [
        {"status": "2", "result": "DELIVRD"},  # no messageid: nothing to match
        {"messageid": "job-1", "status": "1", "result": "PENDING"},  # not a final report
        {"messageid": "x" * 101, "status": "2"},
    ],
)
def test_nxcloud_dr_that_settles_nothing(fields: dict[str, str]) -> None:
    assert parse_nxcloud_dr(fields) is None


def test_uspeedo_receipt_mapping() -> None:
    assert uspeedo_receipt({"ReceiptResult": "Unknow", "ReceiptCode": ""}) is None
    assert uspeedo_receipt({"ReceiptResult": None}) is None
    ok = uspeedo_receipt({"ReceiptResult": "Success", "ReceiptCode": "DELIVRD"})
    assert ok == Receipt(True, "Success/DELIVRD", "")
    bad = uspeedo_receipt(
        {"ReceiptResult": "Fail", "ReceiptCode": "UNDELIV", "ReceiptDesc": "Undeliverable"}
    )
    assert bad == Receipt(False, "Fail/UNDELIV", "Undeliverable")
    assert uspeedo_receipt({"ReceiptResult": "SubmitFail"}) == Receipt(
        False, "SubmitFail", "SubmitFail"
    )


def test_volc_record_shapes() -> None:
    body = json.dumps(
        {
            "Data": [
                {"TaskOpenId": "t1", "Phone": "13800138000", "Duration": 12},
                {"TaskOpenId": "t1", "Phone": "138-0013-8001", "Duration": 0, "ReleaseType": 4},
                {"TaskOpenId": "t1", "Phone": "13800138002", "AnswerTime": "2024-01-01 10:00:00"},
                {"TaskOpenId": "t1", "Phone": "13800138003"},  # no outcome: skipped
                {"Phone": "13800138004", "Duration": 3},  # no task: skipped
            ]
        }
    ).encode()
    records = parse_volc_records(body)
    assert [(r.provider_id, r.receipt.delivered) for r in records] == [
        ("t1:13800138000", True),
        ("t1:13800138001", False),
        ("t1:13800138002", True),
    ]
    assert records[1].receipt.code == "4"
    assert "not answered" in records[1].receipt.text
    assert parse_volc_records(b"not json") == []
    single = parse_volc_records(b'{"TaskOpenId": "t2", "Phone": "13800138000", "Duration": "7"}')
    assert [r.provider_id for r in single] == ["t2:13800138000"]


# --- authentication ---------------------------------------------------------------------------


def test_volc_auth_code_vector() -> None:
    # Computed outside Python: printf body | sha256sum, then printf ts+hex+token | sha256sum.
    body = b'{"TaskOpenId":"t1","Phone":"13800138000","Duration":12}'
    assert hashlib.sha256(body).hexdigest() == (
        "52568f6cb7aadf108dbc3f86dc9c34c69b22382ace60bf2ae9ba4d77d37b25d6"
    )
    expected = "05ae76380563cb132fcccf482b5940d7c8d8568c62c2966875b6a4e148e99ae9"
    assert volc_auth_code("1700000000", body, VOLC_TOKEN) == expected


def test_volc_verified(cfg: Settings) -> None:
    body = b'{"TaskOpenId":"t1","Phone":"13800138000","Duration":12}'
    good = volc_auth_code("1700000000", body, VOLC_TOKEN)
    vms = cfg.accounts["vms"]
    assert volc_verified(vms, "1700000000", good.upper(), body)
    assert not volc_verified(vms, "1700000001", good, body)  # timestamp is signed
    assert not volc_verified(vms, "1700000000", good, body + b" ")  # so is the body
    assert not volc_verified(None, "1700000000", good, body)
    # An account of another channel never verifies, even with a matching code.
    nx_code = volc_auth_code("1", body, NX_TOKEN)
    assert not volc_verified(cfg.accounts["nx"], "1", nx_code, body)


def test_nxcloud_token(cfg: Settings) -> None:
    assert nxcloud_token_ok(cfg.accounts["nx"], NX_TOKEN)
    assert not nxcloud_token_ok(cfg.accounts["nx"], NX_TOKEN + "x")
    assert not nxcloud_token_ok(cfg.accounts["nx"], "")
    assert not nxcloud_token_ok(None, NX_TOKEN)
    # No token configured: DRs for that account are refused, never accepted with "".
    assert not nxcloud_token_ok(cfg.accounts["nx-open"], "")
    assert not nxcloud_token_ok(cfg.accounts["vms"], VOLC_TOKEN)


# --- first final wins -------------------------------------------------------------------------


def test_settle_moves_only_sent_or_unknown(cfg: Settings) -> None:
    engine = get_engine(cfg.database_url)
    for mid, status in [("m-sent", "sent"), ("m-unknown", "unknown"), ("m-sending", "sending"),
                        ("m-failed", "failed"), ("m-queued", "queued")]:  # fmt: skip
        _insert(cfg, mid, status)
    bad = Receipt(False, "5/UNDELIV", "delivery failed")
    for mid in ("m-sent", "m-unknown", "m-sending", "m-failed", "m-queued"):
        settle(engine, "nx", bad, message_id=mid, now=100.0)
    assert _row(cfg, "m-sent").status == "undelivered"
    unknown = _row(cfg, "m-unknown")
    assert (unknown.status, unknown.provider_id, unknown.sent_at) == ("undelivered", "m-unknown",
                                                                       100.0)  # fmt: skip
    assert [_row(cfg, m).status for m in ("m-sending", "m-failed", "m-queued")] == [
        "sending",
        "failed",
        "queued",
    ]


def test_duplicates_and_late_contradictions_change_nothing(cfg: Settings) -> None:
    engine = get_engine(cfg.database_url)
    _insert(cfg, "m1", "sent", sent_at=50.0, error_code="old", error_text="old")
    delivered = Receipt(True, "2/DELIVRD", "")
    assert settle(engine, "nx", delivered, message_id="m1", now=100.0) == 1
    assert settle(engine, "nx", delivered, message_id="m1", now=200.0) == 0
    late = Receipt(False, "5/UNDELIV", "delivery failed")
    assert settle(engine, "nx", late, message_id="m1", now=300.0) == 0
    row = _row(cfg, "m1")
    assert (row.status, row.final_at, row.sent_at) == ("delivered", 100.0, 50.0)
    assert (row.error_code, row.error_text) == (None, None)


def test_settle_is_scoped_to_the_account(cfg: Settings) -> None:
    _insert(cfg, "m1", "sent")
    engine = get_engine(cfg.database_url)
    assert settle(engine, "nx-open", Receipt(True, "2", ""), message_id="m1") == 0
    assert _row(cfg, "m1").status == "sent"
    with pytest.raises(ValueError):
        settle(engine, "nx", Receipt(True, "2", ""))


# --- the routes, in process -------------------------------------------------------------------


@pytest.fixture
def client(cfg: Settings) -> TestClient:
    return TestClient(create_app(cfg, keys=[]))


def test_nxcloud_route_form_and_query(cfg: Settings, client: TestClient) -> None:
    _insert(cfg, "m-form", "sent")
    _insert(cfg, "m-query", "sent")
    url = f"/v1/callbacks/nxcloud/nx/{NX_TOKEN}"
    form = {"messageid": "m-form", "status": "10", "result": "UNDELIV", "phone": "8613800138000"}
    resp = client.post(url, data=form)
    assert (resp.status_code, resp.text) == (200, "success")
    assert resp.headers["content-type"].startswith("text/plain")
    resp = client.post(url, params={"messageid": "m-query", "status": "2", "result": "DELIVRD"})
    assert (resp.status_code, resp.text) == (200, "success")
    row = _row(cfg, "m-form")
    assert (row.status, row.error_code, row.error_text) == ("undelivered", "10/UNDELIV",
                                                            "invalid number")  # fmt: skip
    assert row.final_at is not None
    assert _row(cfg, "m-query").status == "delivered"
    # An unmatched DR is still acknowledged (NXCloud would not resend anyway).
    assert client.post(url, data={"messageid": "nope", "status": "2"}).text == "success"


def test_nxcloud_route_refusals_look_alike(cfg: Settings, client: TestClient) -> None:
    _insert(cfg, "m1", "sent")
    dr = {"messageid": "m1", "status": "2", "result": "DELIVRD"}
    answers = [
        client.post(f"/v1/callbacks/nxcloud/nx/{NX_TOKEN}x", data=dr),
        client.post(f"/v1/callbacks/nxcloud/no-such-account/{NX_TOKEN}", data=dr),
        client.post("/v1/callbacks/nxcloud/nx-open/x", data=dr),
        client.post(f"/v1/callbacks/nxcloud/vms/{VOLC_TOKEN}", data=dr),
    ]
    assert {(a.status_code, a.text) for a in answers} == {(404, '{"detail":"Not Found"}')}
    assert all(NX_TOKEN not in a.text for a in answers)
    assert _row(cfg, "m1").status == "sent"


def test_volc_route(cfg: Settings, client: TestClient) -> None:
    _insert(cfg, "v1", "sent", account="vms", provider_id="t1:13800138000")
    _insert(cfg, "v2", "sent", account="vms", provider_id="t1:13800138001")
    body = json.dumps(
        [
            {"TaskOpenId": "t1", "Phone": "13800138000", "Duration": 12},
            {"TaskOpenId": "t1", "Phone": "13800138001", "Duration": 0, "CallResult": "NoAnswer"},
        ]
    ).encode()
    ts = "1700000000"
    url = "/v1/callbacks/volc/vms"
    bad = client.post(url, params={"timestamp": ts, "authCode": "0" * 64}, content=body)
    assert bad.status_code == 403
    assert _row(cfg, "v1").status == "sent"
    code = volc_auth_code(ts, body, VOLC_TOKEN)
    stranger = client.post(
        "/v1/callbacks/volc/nobody", params={"timestamp": ts, "authCode": code}, content=body
    )
    assert (stranger.status_code, stranger.text) == (bad.status_code, bad.text)
    ok = client.post(url, params={"timestamp": ts, "authCode": code}, content=body)
    assert ok.status_code == 200 and ok.json()["settled"] == 2
    again = client.post(url, params={"timestamp": ts, "authCode": code}, content=body)
    assert again.status_code == 200 and again.json()["settled"] == 0
    assert _row(cfg, "v1").status == "delivered"
    v2 = _row(cfg, "v2")
    assert (v2.status, v2.error_code) == ("undelivered", "NoAnswer")


def test_access_log_never_shows_the_token(cfg: Settings, caplog: pytest.LogCaptureFixture) -> None:
    create_app(cfg, keys=[])  # installs the redaction filter
    access = logging.getLogger("uvicorn.access")
    with caplog.at_level(logging.INFO, logger="uvicorn.access"):
        # The call uvicorn's access logger makes, with the same argument layout.
        access.info(
            '%s - "%s %s HTTP/%s" %d',
            "127.0.0.1:5000",
            "POST",
            f"/v1/callbacks/nxcloud/nx/{NX_TOKEN}?status=2",
            "1.1",
            200,
        )
        access.info(
            '%s - "%s %s HTTP/%s" %d',
            "127.0.0.1:5000",
            "POST",
            "/v1/callbacks/volc/vms?timestamp=1&authCode=abcdef0123",
            "1.1",
            200,
        )
    text = caplog.text
    assert NX_TOKEN not in text and "abcdef0123" not in text
    assert "/v1/callbacks/nxcloud/nx/***?status=2" in text
    assert "authCode=***" in text
