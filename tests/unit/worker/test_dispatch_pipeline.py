"""The domain pipeline without Celery: enqueue → accept → dispatch → outcomes → lookup."""

from __future__ import annotations

import json
from typing import Any

import pytest

from teledispatch.channels.base import HttpRequest
from teledispatch.producer import submit as enqueue_mod
from teledispatch.producer.lookup import job_status, lookup
from teledispatch.producer.submit import enqueue_stream
from teledispatch.worker.context import Context
from teledispatch.worker.dispatch import dispatch
from teledispatch.worker.dispatch import loop as dispatch_loop
from teledispatch.worker.sweep import sweep
from teledispatch.worker.testing import FakeClock, MockTransport
from teledispatch.worker.transport import HttpResponse
from tests.support import make_settings, nx_ok


@pytest.fixture
def parts(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, float]]:
    """Wake-ups the producer asked for, one per stored part (no broker in unit tests)."""
    wakes: list[tuple[str, float]] = []
    monkeypatch.setattr(
        enqueue_mod, "wake", lambda cfg, account, delay: wakes.append((account.name, delay))
    )
    return wakes


def run_all(ctx: Context, parts: list[Any]) -> None:
    for _ in range(1000):
        if dispatch(ctx, "nx").claimed == 0:
            break


def phones(n: int, start: int = 0) -> list[dict[str, str]]:
    return [{"phone": f"861380013{i:04d}"} for i in range(start, start + n)]


def test_job_is_split_into_parts_and_every_recipient_sent(ctx: Context, parts: list[Any]) -> None:
    enqueue_mod.PART_SIZE, old = 300, enqueue_mod.PART_SIZE
    try:
        result = enqueue_stream("nx", phones(1000), defaults={"content": "hi"}, cfg=ctx.settings)
    finally:
        enqueue_mod.PART_SIZE = old
    assert len(parts) == 4
    run_all(ctx, parts)
    st = job_status(result.job_id, cfg=ctx.settings)
    assert st.counts == {"sent": 1000} and st.done
    requests = ctx.transport.requests  # type: ignore[attr-defined]
    assert len(requests) == 5
    assert all(len(json.loads(r.body)["items"]) <= 200 for r in requests)
    row = lookup(phone="+8613800130007", cfg=ctx.settings)[0]
    assert row.status == "sent" and row.provider_id == f"{result.job_id}-7"


def test_single_jobs_share_requests_across_jobs(ctx: Context, parts: list[Any]) -> None:
    ids = [
        enqueue_stream("nx", phones(1, i), defaults={"content": "code"}, cfg=ctx.settings).job_id
        for i in range(30)
    ]
    run_all(ctx, parts)
    assert len(ctx.transport.requests) == 1  # type: ignore[attr-defined]
    assert all(job_status(j, cfg=ctx.settings).counts == {"sent": 1} for j in ids)


def test_503_is_retried_then_failed_after_max_attempts(ctx: Context, parts: list[Any]) -> None:
    calls = {"n": 0}

    def flaky(request: HttpRequest) -> HttpResponse:
        calls["n"] += 1
        return HttpResponse(503, {}, b"busy")

    ctx.transport = MockTransport(flaky)
    ctx.settings = make_settings(ctx.settings.database_url, max_attempts=3, backoff_base_s=0.001)
    job = enqueue_stream("nx", phones(2), defaults={"content": "x"}, cfg=ctx.settings)
    ctx.clock = clock = FakeClock()
    for _ in range(3):
        dispatch(ctx, "nx")
        clock.advance(1.0)  # past the 1–2 ms backoff
    st = job_status(job.job_id, cfg=ctx.settings)
    assert st.counts == {"failed": 2}
    assert calls["n"] == 3
    row = lookup(phone="+8613800130000", cfg=ctx.settings)[0]
    assert row.error_code == "503" and "after 3 attempts" in (row.error_text or "")


def test_item_failure_recorded_with_provider_text(ctx: Context, parts: list[Any]) -> None:
    def partial(request: HttpRequest) -> HttpResponse:
        items = json.loads(request.body)["items"]
        data = [
            {
                "phone": it["phone"],
                "messageid": it["sysMessageId"],
                "status": "Failure" if k % 2 else "Success",
                "message": "number blacklisted" if k % 2 else "",
            }
            for k, it in enumerate(items)
        ]
        return HttpResponse(200, {}, json.dumps({"code": 0, "data": data}).encode())

    ctx.transport = MockTransport(partial)
    job = enqueue_stream("nx", phones(4), defaults={"content": "x"}, cfg=ctx.settings)
    run_all(ctx, parts)
    assert job_status(job.job_id, cfg=ctx.settings).counts == {"failed": 2, "sent": 2}
    failed = lookup(phone="+8613800130001", cfg=ctx.settings)[0]
    assert (failed.status, failed.error_text) == ("failed", "number blacklisted")


def test_auth_error_fails_whole_batch_with_code(ctx: Context, parts: list[Any]) -> None:
    ctx.transport = MockTransport(
        lambda r: HttpResponse(200, {}, b'{"code":1003,"message":"sign error"}')
    )
    job = enqueue_stream("nx", phones(3), defaults={"content": "x"}, cfg=ctx.settings)
    run_all(ctx, parts)
    assert job_status(job.job_id, cfg=ctx.settings).counts == {"failed": 3}
    assert lookup(phone="+8613800130002", cfg=ctx.settings)[0].error_code == "1003"


def test_expired_lease_is_reclaimed_by_sweep(ctx: Context, parts: list[Any]) -> None:
    from teledispatch.db import messages as repo

    job = enqueue_stream("nx", phones(2), defaults={"content": "x"}, cfg=ctx.settings)
    claim = repo.claim(ctx.engine, "nx", 10, lease_s=-1, now=__import__("time").time())
    assert len(claim.messages) == 2  # claimed, then the "worker" died: lease already expired
    report = sweep(ctx)
    assert report.reclaimed == 2
    run_all(ctx, [])
    assert job_status(job.job_id, cfg=ctx.settings).counts == {"sent": 2}


def test_stale_claim_cannot_overwrite_newer_outcome(ctx: Context, parts: list[Any]) -> None:
    import time

    from teledispatch.db import messages as repo

    enqueue_stream("nx", phones(1), defaults={"content": "x"}, cfg=ctx.settings)
    first = repo.claim(ctx.engine, "nx", 10, lease_s=-1, now=time.time())
    sweep(ctx)
    second = repo.claim(ctx.engine, "nx", 10, lease_s=60, now=time.time())
    assert [m.id for m in second.messages] == [m.id for m in first.messages]
    stale = repo.apply(ctx.engine, first.token, [repo.Update.failed(first.messages[0].id)], 0)
    assert stale == 0
    fresh = repo.apply(ctx.engine, second.token, [repo.Update.sent(first.messages[0].id, None)], 0)
    assert fresh == 1


def test_storing_a_part_again_changes_nothing(ctx: Context, parts: list[Any]) -> None:
    from teledispatch.channels.registry import rules_for
    from teledispatch.producer.submit import store_part

    job = enqueue_stream("nx", phones(5), defaults={"content": "x"}, cfg=ctx.settings)
    part = [[0, {"phone": "+8613800130000", "content": "x"}]]
    for _ in range(3):
        store_part(ctx.engine, job.job_id, part, rules_for("nxcloud.sms"), None)
    assert job_status(job.job_id, cfg=ctx.settings).counts == {"queued": 5}


def test_cancel_stops_unclaimed_and_lets_claimed_finish(ctx: Context, parts: list[Any]) -> None:
    import time

    from teledispatch.db import messages as repo
    from teledispatch.producer.cancel import cancel_job

    job = enqueue_stream("nx", phones(5), defaults={"content": "x"}, cfg=ctx.settings)
    in_flight = repo.claim(ctx.engine, "nx", 2, lease_s=60, now=time.time())
    assert cancel_job(job.job_id, cfg=ctx.settings).cancelled == 3
    done = [repo.Update.sent(m.id, m.id) for m in in_flight.messages]
    assert repo.apply(ctx.engine, in_flight.token, done, time.time()) == 2
    st = job_status(job.job_id, cfg=ctx.settings)
    assert st.counts == {"cancelled": 3, "sent": 2} and st.done and st.cancelled
    # A part stored after the cancel is written as cancelled, never sent.
    from teledispatch.channels.registry import rules_for
    from teledispatch.producer.submit import store_part

    late = [[7, {"phone": "+8613800139999", "content": "x"}]]
    store_part(ctx.engine, job.job_id, late, rules_for("nxcloud.sms"), None)
    assert job_status(job.job_id, cfg=ctx.settings).counts["cancelled"] == 4
    assert dispatch(ctx, "nx").claimed == 0


def test_ambiguous_send_is_reconciled_never_blindly_resent(ctx: Context, parts: list[Any]) -> None:
    """A dropped answer makes the batch unknown; the status query settles each message:
    the one the provider got becomes sent, the one it never got is resent exactly once."""
    import urllib.parse

    from teledispatch.errors import AmbiguousError
    from teledispatch.worker.reconcile import reconcile

    received: set[str] = set()
    state = {"drop": True}

    def provider(request: HttpRequest) -> HttpResponse:
        if request.url.endswith("/api/sms/get"):
            form = dict(urllib.parse.parse_qsl(request.body.decode()))
            row = {"msgid": form["messageid"]} if form["messageid"] in received else None
            return HttpResponse(200, {}, json.dumps({"code": "0", "row": row}).encode())
        items = json.loads(request.body)["items"]
        if state["drop"]:
            received.add(items[0]["sysMessageId"])  # the provider kept only the first item
            raise AmbiguousError("ReadTimeout after sending", code="timeout")
        received.update(i["sysMessageId"] for i in items)
        return nx_ok(request)

    ctx.transport = MockTransport(provider)
    job = enqueue_stream("nx", phones(2), defaults={"content": "x"}, cfg=ctx.settings)
    run_all(ctx, parts)
    st = job_status(job.job_id, cfg=ctx.settings)
    assert st.counts == {"unknown": 2} and not st.done
    state["drop"] = False
    with ctx.engine.begin() as conn:  # skip the wait before the first status query
        conn.exec_driver_sql("UPDATE messages SET due_at = 0")
    assert reconcile(ctx, ctx.settings.account("nx")).settled == 1
    with ctx.engine.begin() as conn:
        conn.exec_driver_sql("UPDATE messages SET due_at = 0 WHERE status = 'queued'")
    run_all(ctx, [])
    st = job_status(job.job_id, cfg=ctx.settings)
    assert st.counts == {"sent": 2} and st.done
    sends = [r for r in ctx.transport.requests if r.url.endswith("/multi/mt")]
    sent_ids = [i["sysMessageId"] for r in sends for i in json.loads(r.body)["items"]]
    assert sent_ids.count(f"{job.job_id}-0") == 1  # the received one was never resent
    assert sent_ids.count(f"{job.job_id}-1") == 2  # the lost one was resent once


def test_unreconcilable_unknown_is_final_and_marked(ctx: Context, parts: list[Any]) -> None:
    from teledispatch.errors import AmbiguousError
    from teledispatch.worker.reconcile import GIVE_UP_AFTER_S, reconcile

    def drop(request: HttpRequest) -> HttpResponse:
        raise AmbiguousError("connection dropped", code="transport")

    ctx.transport = MockTransport(drop)
    job = enqueue_stream("nx", phones(1), defaults={"content": "x"}, cfg=ctx.settings)
    run_all(ctx, parts)
    with ctx.engine.begin() as conn:
        conn.exec_driver_sql(f"UPDATE messages SET due_at = 0, updated_at = {-GIVE_UP_AFTER_S}")
    reconcile(ctx, ctx.settings.account("nx"))
    st = job_status(job.job_id, cfg=ctx.settings)
    assert st.counts == {"unknown": 1} and st.done
    row = lookup(phone="+8613800130000", cfg=ctx.settings)[0]
    assert row.error_code == "unreconciled" and "may have been sent" in (row.error_text or "")


def test_batch_lost_after_departure_is_reconciled_not_resent(
    ctx: Context, parts: list[Any]
) -> None:
    """A worker killed between sending and recording: the sweep must not requeue blindly."""
    import time

    from teledispatch.db import messages as repo

    job = enqueue_stream("nx", phones(2), defaults={"content": "x"}, cfg=ctx.settings)
    t = time.time()
    # A lease that has expired by now, departed while it held (by the worker's clock).
    lost = repo.claim(ctx.engine, "nx", 10, lease_s=-1, now=t)
    assert repo.mark_departing(ctx.engine, lost.token, "", t - 2)
    assert sweep(ctx).reclaimed == 2
    assert job_status(job.job_id, cfg=ctx.settings).counts == {"unknown": 2}
    row = lookup(phone="+8613800130000", cfg=ctx.settings)[0]
    assert row.error_code == "worker_lost"
    assert dispatch(ctx, "nx").claimed == 0  # nothing is sent again without reconciliation


def test_poison_batch_fails_after_max_attempts(ctx: Context, parts: list[Any]) -> None:
    """A batch whose worker dies every time (before sending) ends failed, not redelivered
    forever: each crash costs an attempt."""
    import time

    from teledispatch.db import messages as repo

    job = enqueue_stream("nx", phones(3), defaults={"content": "x"}, cfg=ctx.settings)
    limit = ctx.settings.account("nx").max_attempts
    for n in range(limit):
        claim = repo.claim(ctx.engine, "nx", 10, lease_s=-1, now=time.time())
        assert len(claim.messages) == 3, f"crash {n}"
        sweep(ctx)
    st = job_status(job.job_id, cfg=ctx.settings)
    assert st.counts == {"failed": 3} and st.done
    assert "worker lost the batch 5 times" in (
        lookup(phone="+8613800130001", cfg=ctx.settings)[0].error_text or ""
    )


def departures(ctx: Context) -> list[str]:
    key = ctx.limiter.keys(ctx.settings.account("nx")).departures
    return [m.decode() for m in ctx.redis.zrange(key, 0, -1)]


def test_rate_limited_send_confirms_its_departure_when_written(
    ctx: Context, parts: list[Any]
) -> None:
    """The departure gate's entry is pending until the body is written, then confirmed (the
    stub transport "writes" before its handler answers)."""
    ctx.settings = make_settings(ctx.settings.database_url, max_requests_per_second=1000)
    seen: list[list[str]] = []

    def provider(request: HttpRequest) -> HttpResponse:
        seen.append(departures(ctx))
        return nx_ok(request)

    ctx.transport = MockTransport(provider)
    job = enqueue_stream("nx", phones(3), defaults={"content": "x"}, cfg=ctx.settings)
    run_all(ctx, parts)
    assert job_status(job.job_id, cfg=ctx.settings).counts == {"sent": 3}
    assert len(seen) == 1 and len(seen[0]) == 1
    assert ":3:" in seen[0][0] and ":p:" not in seen[0][0]  # confirmed before the answer


def test_departure_is_confirmed_when_nothing_was_written(ctx: Context, parts: list[Any]) -> None:
    """A connect failure writes nothing: the entry must not stay pending (held as departing
    "now" for its whole lease), so the end of the send confirms it."""
    from teledispatch.errors import NotSentError

    ctx.settings = make_settings(ctx.settings.database_url, max_requests_per_second=1000)

    class Refused:
        def warm(self) -> None:
            pass

        def send(self, request: HttpRequest, timeout_s: float, on_written: Any = None) -> Any:
            raise NotSentError("connection refused", code="connect")

    ctx.transport = Refused()
    enqueue_stream("nx", phones(2), defaults={"content": "x"}, cfg=ctx.settings)
    dispatch(ctx, "nx")
    (member,) = departures(ctx)
    assert ":p:" not in member


def test_provider_recipient_cap_defers_only_that_recipient(
    ctx: Context, parts: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """NXCloud 13007 (5 per number per hour) on one item: that message is deferred for the
    window without spending its attempt, the limiter holds its phone for every worker, and
    the report counts each status once per message."""
    held: list[tuple[str, float | None]] = []
    monkeypatch.setattr(
        ctx.limiter, "defer_recipient", lambda _acct, phone, s=None: held.append((phone, s))
    )

    def capped(request: HttpRequest) -> HttpResponse:
        items = json.loads(request.body)["items"]
        data = [
            {
                "phone": it["phone"],
                "messageid": it["sysMessageId"],
                "status": "Failure" if k == 1 else "Success",
                "message": "Too many messages to this number (13007)" if k == 1 else "",
            }
            for k, it in enumerate(items)
        ]
        return HttpResponse(200, {}, json.dumps({"code": 0, "data": data}).encode())

    ctx.transport = MockTransport(capped)
    job = enqueue_stream("nx", phones(3), defaults={"content": "x"}, cfg=ctx.settings)
    report = dispatch(ctx, "nx")
    assert report.counts == {"sent": 2, "deferred": 1} and report.requests == 1
    assert held == [("+8613800130001", 3600.0)]
    assert job_status(job.job_id, cfg=ctx.settings).counts == {"deferred": 1, "sent": 2}
    capped_row = lookup(phone="+8613800130001", cfg=ctx.settings)[0]
    assert (capped_row.status, capped_row.error_code) == ("deferred", "13007")
    assert capped_row.attempts == 0  # refunded: the cap is not the recipient's fault


def test_an_unpaced_task_keeps_claiming_while_claims_come_back_full(
    ctx: Context,
    parts: list[Any],
    published: list[tuple[str, list[Any], str, float]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Five full batches and a short one: one task sends them all (each task costs the
    worker ~2 ms of its own), publishing one follow-up at its first claim so that other
    processes join in, and nothing once a claim comes back short."""
    monkeypatch.setattr(dispatch_loop, "LOOP_BUDGET_S", 60.0)  # a slow machine: no deadline
    enqueue_stream("nx", phones(1050), defaults={"content": "hi"}, cfg=ctx.settings)
    report = dispatch(ctx, "nx")
    assert (report.claimed, report.requests) == (1050, 6)
    assert [p[0] for p in published] == ["dispatch.nxcloud.sms"]


def test_follow_ups_never_pile_up_behind_a_looping_task(
    ctx: Context,
    parts: list[Any],
    published: list[tuple[str, list[Any], str, float]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every task's time runs out after one claim, and each one publishes at its first claim
    and when its time is up: run as a pool would (first published, first run), at most one
    follow-up ever waits to start, and the backlog is still sent in full."""
    monkeypatch.setattr(dispatch_loop, "LOOP_BUDGET_S", 0.0)
    result = enqueue_stream("nx", phones(2000), defaults={"content": "hi"}, cfg=ctx.settings)
    dispatch(ctx, "nx")
    longest = len(published)
    for _ in range(100):
        if not published:
            break
        name, args, _queue, _countdown = published.pop(0)
        assert (name, args) == ("dispatch.nxcloud.sms", ["nx"])
        dispatch(ctx, "nx")
        longest = max(longest, len(published))
    assert longest == 1
    assert job_status(result.job_id, cfg=ctx.settings).counts == {"sent": 2000}


def test_a_paced_account_sends_one_claim_per_task(
    db_url: str, parts: list[Any], published: list[tuple[str, list[Any], str, float]]
) -> None:
    """Rate-limited accounts keep one request per task: their limits set the pace."""
    import fakeredis

    from teledispatch.db.engine import get_engine
    from teledispatch.db.tables import create_schema

    cfg = make_settings(db_url, max_requests_per_second=1000)
    create_schema(get_engine(db_url))
    ctx = Context(
        settings=cfg,
        engine=get_engine(db_url),
        redis=fakeredis.FakeRedis(),
        transport=MockTransport(nx_ok),
        publish=lambda *args: published.append(args),
    )
    enqueue_stream("nx", phones(1050), defaults={"content": "hi"}, cfg=cfg)
    report = dispatch(ctx, "nx")
    assert (report.claimed, report.requests) == (200, 1)
    assert [p[0] for p in published] == ["dispatch.nxcloud.sms"]


def test_a_finished_request_takes_its_batch_row_with_it(ctx: Context, parts: list[Any]) -> None:
    """Left to the sweep, finished batch rows piled up until their leases expired."""
    import sqlalchemy as sa

    from teledispatch.db.tables import batches_table

    enqueue_stream("nx", phones(450), defaults={"content": "hi"}, cfg=ctx.settings)
    run_all(ctx, parts)
    with ctx.engine.connect() as conn:
        left = conn.execute(sa.select(sa.func.count()).select_from(batches_table)).scalar_one()
    assert left == 0
