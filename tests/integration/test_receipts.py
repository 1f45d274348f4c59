"""Delivery receipts end to end over real HTTP: the simulator pushes NXCloud DRs to
``teledispatch api`` (a subprocess), workers and the beat-driven USpeedo poller settle
messages, on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from teledispatch.db.engine import get_engine
from teledispatch.db.tables import messages_table
from teledispatch.producer.jobs import SendJob
from teledispatch.producer.submit import enqueue
from tests.support import Stack, poll

pytestmark = pytest.mark.integration

NX_TOKEN = "nx-dr-9c2e41d07a5b"


def _statuses(stack: Stack, job_id: str) -> dict[str, str]:
    m = messages_table.c
    with get_engine(stack.cfg.database_url).connect() as conn:
        rows = conn.execute(sa.select(m.id, m.status).where(m.job_id == job_id)).all()
    return {str(r.id): str(r.status) for r in rows}


def _row(stack: Stack, message_id: str) -> Any:
    with get_engine(stack.cfg.database_url).connect() as conn:
        return conn.execute(
            sa.select(messages_table).where(messages_table.c.id == message_id)
        ).one()


def _final(statuses: dict[str, str]) -> bool:
    return all(s in ("delivered", "undelivered") for s in statuses.values())


def test_nxcloud_drs_settle_messages(make_stack: Callable[..., Stack]) -> None:
    stack = make_stack(["--dr-delay-ms", "300", "--dr-fail-rate", "0.5", "--seed", "7"])
    stack.configure("nxcloud", callback_token=NX_TOKEN)
    _, base = stack.api(log_level="info")
    stack.worker(concurrency=2, beat=True, name="rw")
    dr_url = f"{base}/v1/callbacks/nxcloud/nxcloud/{NX_TOKEN}"
    phones = [f"+8613900{i:06d}" for i in range(20)]
    job_id = enqueue(
        SendJob(
            account="nxcloud",
            recipients=[{"phone": p} for p in phones],
            defaults={"content": "hello", "dr_url": dr_url},
        ),
        cfg=stack.cfg,
    )

    final = poll(
        lambda: (s := _statuses(stack, job_id)) and len(s) == 20 and _final(s) and s,
        25,
        "every DR to settle its message",
    )
    counts = {s: list(final.values()).count(s) for s in set(final.values())}
    # Half the DRs say undelivered (seeded): both kinds arrived and were applied.
    assert counts.get("delivered", 0) > 0 and counts.get("undelivered", 0) > 0, counts
    some_undelivered = next(mid for mid, s in final.items() if s == "undelivered")
    row = _row(stack, some_undelivered)
    assert (row.error_code, row.error_text) == ("5/UNDELIV", "delivery failed")
    assert row.final_at is not None and row.final_at >= row.sent_at

    delivered = next(mid for mid, s in final.items() if s == "delivered")
    with httpx.Client(base_url=base, timeout=10) as client:
        # The same DR again, then a contradicting one: first final wins.
        dup = {"messageid": delivered, "status": "2", "result": "DELIVRD", "phone": "x"}
        for form in (dup, dup, {**dup, "status": "5", "result": "UNDELIV"}):
            resp = client.post(f"/v1/callbacks/nxcloud/nxcloud/{NX_TOKEN}", data=form)
            assert (resp.status_code, resp.text) == (200, "success")
        # The older query-string form, for a message that is final already.
        resp = client.post(
            f"/v1/callbacks/nxcloud/nxcloud/{NX_TOKEN}",
            params={"messageid": some_undelivered, "status": "2", "result": "DELIVRD"},
        )
        assert resp.text == "success"
        # Wrong token, unknown account: the same 404, nothing changed.
        wrong = client.post("/v1/callbacks/nxcloud/nxcloud/guess", data=dup)
        ghost = client.post(f"/v1/callbacks/nxcloud/ghost/{NX_TOKEN}", data=dup)
        assert wrong.status_code == ghost.status_code == 404
        assert wrong.text == ghost.text
        # No API key is needed for callbacks, but the rest of /v1 still wants one.
        assert client.get(f"/v1/jobs/{job_id}").status_code == 401
    assert _row(stack, delivered).status == "delivered"
    assert _row(stack, some_undelivered).status == "undelivered"
    assert _statuses(stack, job_id) == final

    log_text = (stack.workdir / "api.log").read_text(errors="replace")
    assert "/v1/callbacks/nxcloud/nxcloud/***" in log_text  # access log is on...
    assert NX_TOKEN not in log_text  # ...and never shows the token


def test_uspeedo_receipts_are_polled(make_stack: Callable[..., Stack]) -> None:
    stack = make_stack(["--dr-delay-ms", "300", "--dr-fail-rate", "0.5", "--seed", "11"])
    stack.env.update(
        TELEDISPATCH_RECEIPTS_S="0.3",  # the beat interval of the poller
        TELEDISPATCH_RECEIPT_POLL_DELAY_S="0.1",  # before the simulator's 300 ms: sees Unknow
        TELEDISPATCH_RECEIPT_REPOLL_S="0.3",
    )
    stack.worker(concurrency=2, beat=True, name="uw")
    phones = [f"+4479111{i:05d}" for i in range(12)]
    job_id = enqueue(
        SendJob(
            account="uspeedo",
            recipients=[{"phone": p} for p in phones],
            defaults={"template_id": "T100", "sender_id": "ACME", "template_params": ["1234"]},
        ),
        cfg=stack.cfg,
    )
    final = poll(
        lambda: (s := _statuses(stack, job_id)) and len(s) == 12 and _final(s) and s,
        25,
        "the poller to settle every USpeedo message",
    )
    kinds = set(final.values())
    assert kinds == {"delivered", "undelivered"}, final
    row = _row(stack, next(mid for mid, s in final.items() if s == "undelivered"))
    assert (row.error_code, row.error_text) == ("Fail/UNDELIV", "Undeliverable")
    queries = [r for r in stack.sim_requests() if r["channel"] == "uspeedo.receipt"]
    assert queries and all(0 < len(q["ids"]) <= 100 for q in queries)


def test_volc_call_records_settle_voice_messages(make_stack: Callable[..., Stack]) -> None:
    stack = make_stack()
    token = "volc-auth-token-41aa"
    stack.configure("volc-vms", callback_token=token)
    _, base = stack.api(log_level="info")
    stack.worker(concurrency=2, beat=True, name="vw")
    job_id = enqueue(
        SendJob(
            account="volc-vms",
            recipients=[{"phone": "+8613800138000"}, {"phone": "+8613800138001"}],
            defaults={"task_open_id": "sim-task-1"},
        ),
        cfg=stack.cfg,
    )
    sent = poll(
        lambda: (s := _statuses(stack, job_id)) and set(s.values()) == {"sent"} and s,
        25,
        "both voice messages sent",
    )
    rows = {mid: _row(stack, mid) for mid in sent}
    by_phone = {r.phone: r for r in rows.values()}
    task, answered = str(by_phone["+8613800138000"].provider_id).split(":")
    _, missed = str(by_phone["+8613800138001"].provider_id).split(":")
    body = json.dumps(
        [
            {"TaskOpenId": task, "Phone": answered, "Duration": 21, "CallId": "c1"},
            {"TaskOpenId": task, "Phone": missed, "Duration": 0, "ReleaseType": "NoAnswer"},
        ]
    ).encode()
    ts = str(int(time.time()))
    inner = hashlib.sha256(body).hexdigest()
    code = hashlib.sha256(f"{ts}{inner}{token}".encode()).hexdigest()
    with httpx.Client(base_url=base, timeout=10) as client:
        url = "/v1/callbacks/volc/volc-vms"
        forged = client.post(url, params={"timestamp": ts, "authCode": "f" * 64}, content=body)
        assert forged.status_code == 403
        assert set(_statuses(stack, job_id).values()) == {"sent"}
        for _ in range(2):  # Volcengine retries pushes: the second one changes nothing
            ok = client.post(url, params={"timestamp": ts, "authCode": code}, content=body)
            assert ok.status_code == 200
        assert ok.json()["settled"] == 0
    assert _row(stack, by_phone["+8613800138000"].id).status == "delivered"
    missed_row = _row(stack, by_phone["+8613800138001"].id)
    assert (missed_row.status, missed_row.error_code) == ("undelivered", "NoAnswer")
    log_text = (stack.workdir / "api.log").read_text(errors="replace")
    assert code not in log_text and "authCode=***" in log_text
