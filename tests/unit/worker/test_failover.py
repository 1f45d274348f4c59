"""Routes and failover: a routed message moves to the route's next account when its own
account's circuit opens or its provider refuses it for a reason another may not have, and a
message that may have left through one account is never sent through another."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from teledispatch.channels.base import HttpRequest
from teledispatch.config import ConfigError, Settings, parse_config, parse_route_tables
from teledispatch.errors import AmbiguousError
from teledispatch.producer import routed as routed_mod
from teledispatch.producer import submit as submit_mod
from teledispatch.producer.jobs import SendJob
from teledispatch.producer.lookup import job_messages, job_status
from teledispatch.producer.submit import enqueue_job
from teledispatch.validation import ValidationFailed
from teledispatch.worker.context import Context
from teledispatch.worker.dispatch import dispatch
from teledispatch.worker.testing import FakeClock, MockTransport
from teledispatch.worker.transport import HttpResponse
from tests.support import nx_ok

T0 = 1_800_000_000.0
ACCOUNTS: dict[str, dict[str, Any]] = {
    "nx": {
        "channel": "nxcloud.sms",
        "base_url": "http://nx.test",
        "access_key": "ak",
        "secret": "sk",
        "app_key": "app",
        "linger_ms": 0,
        "circuit_failures": 1,
    },
    "us": {
        "channel": "uspeedo.sms",
        "base_url": "http://us.test",
        "access_key": "ak",
        "secret": "sk",
        "linger_ms": 0,
    },
    "vms": {"channel": "volc.vms.append", "base_url": "http://vms.test"},
}
ROUTES: dict[str, Any] = {
    "sms": {"accounts": ["nx", "us"], "us": {"template_id": "T1", "sender_id": "ACME"}}
}


def settings_for(db_url: str, routes: dict[str, Any] | None = None, **nx: Any) -> Settings:
    tables = {**ACCOUNTS, "nx": {**ACCOUNTS["nx"], **nx}}
    data = {"accounts": tables, "routes": ROUTES if routes is None else routes}
    accounts = parse_config(data)
    return Settings(
        accounts=accounts,
        routes=parse_route_tables(data, accounts),
        redis_url="redis://fake",
        database_url=db_url,
    )


def us_ok(request: HttpRequest) -> HttpResponse:
    body = {"RetCode": 0, "Message": "ok", "SessionNo": ["s-1"], "FailedTargetPhones": []}
    return HttpResponse(200, {}, json.dumps(body).encode())


class Providers:
    """Both providers behind one transport; ``nx`` is swapped per test."""

    def __init__(self) -> None:
        self.nx = nx_ok
        self.sent: dict[str, list[HttpRequest]] = {"nx": [], "us": []}

    def __call__(self, request: HttpRequest) -> HttpResponse:
        name = "nx" if "nx.test" in request.url else "us"
        self.sent[name].append(request)
        return self.nx(request) if name == "nx" else us_ok(request)


@pytest.fixture
def paused() -> Iterator[set[str]]:
    """Accounts the producer reads as paused (no Redis in this tier)."""
    names: set[str] = set()
    before = routed_mod.read_circuit
    routed_mod.read_circuit = lambda url, account: "paused: x" if account in names else None
    yield names
    routed_mod.read_circuit = before


@pytest.fixture
def routed(
    ctx: Context, monkeypatch: pytest.MonkeyPatch, paused: set[str]
) -> Iterator[tuple[Context, Providers]]:
    monkeypatch.setattr(submit_mod, "wake", lambda cfg, account, delay: None)
    providers = Providers()
    ctx.settings = settings_for(ctx.settings.database_url)
    ctx.transport = MockTransport(providers)
    ctx.clock = FakeClock(T0)
    yield ctx, providers


def send(ctx: Context, phones: list[str], content: str = "Your code is 1234") -> str:
    job = SendJob(
        route="sms", recipients=[{"phone": p} for p in phones], defaults={"content": content}
    )
    return enqueue_job(job, cfg=ctx.settings).job_id


def run(ctx: Context, rounds: int = 6) -> None:
    for _ in range(rounds):
        for account in ("nx", "us"):
            dispatch(ctx, account)
        assert isinstance(ctx.clock, FakeClock)
        ctx.clock.advance(1.0)


PHONES = [f"+86138001380{i:02d}" for i in range(5)]


# --- configuration -----------------------------------------------------------------------------


def test_a_route_lists_accounts_per_country_longest_prefix_first() -> None:
    routes = {"sms": {"86": ["nx", "us"], "861": ["us"], "*": ["us"], "us": {"template_id": "T"}}}
    route = settings_for("sqlite://", routes).route("sms")
    assert route.accounts_for("+8613800138000") == ("us",)
    assert route.accounts_for("+8620123456") == ("nx", "us")
    assert route.accounts_for("+447911123456") == ("us",)
    assert route.next_account("+8620123456", "nx") == "us"
    assert route.next_account("+8620123456", "us") is None


def test_bad_routes_are_one_error_naming_each_problem() -> None:
    routes = {"sms": {"accounts": ["nx", "ghost", "vms", "us"]}, "empty": {}}
    with pytest.raises(ConfigError) as err:
        settings_for("sqlite://", routes)
    text = str(err.value)
    assert "routes.sms.ghost: not a configured account" in text
    assert "routes.sms.vms: channel volc.vms.append cannot carry" in text
    assert "routes.sms.us: a USpeedo member needs template_id" in text
    assert "routes.empty: give accounts" in text


# --- enqueue -----------------------------------------------------------------------------------


def test_each_message_is_checked_against_every_account_it_may_use(
    routed: tuple[Context, Providers],
) -> None:
    ctx, _ = routed
    with pytest.raises(ValidationFailed) as err:
        send(ctx, PHONES[:1], content="x" * 600)  # NXCloud takes 1000, USpeedo's template 500
    [problem] = err.value.problems
    assert problem.field == "template_params" and "(via us)" in problem.rule
    with pytest.raises(ValidationFailed) as err:
        enqueue_job(
            SendJob(route="sms", recipients=[{"phone": PHONES[0], "content": "x", "ext": "1"}]),
            cfg=ctx.settings,
        )
    assert [p.field for p in err.value.problems] == ["ext"]
    with pytest.raises(ValidationFailed, match="route 'nope' is not configured"):
        enqueue_job(SendJob(route="nope", recipients=[{"phone": PHONES[0]}]), cfg=ctx.settings)


def test_a_message_starts_on_the_first_account_whose_circuit_is_closed(
    routed: tuple[Context, Providers], paused: set[str]
) -> None:
    ctx, _ = routed
    first = send(ctx, PHONES[:1])
    paused.add("nx")
    second = send(ctx, PHONES[1:2])
    [a] = job_messages(first, cfg=ctx.settings)
    [b] = job_messages(second, cfg=ctx.settings)
    assert (a.account, a.fields["content"]) == ("nx", "Your code is 1234")
    assert b.account == "us" and b.route == "sms"
    assert b.fields == {
        "phone": PHONES[1],
        "template_id": "T1",
        "sender_id": "ACME",
        "template_params": ["Your code is 1234"],
    }
    assert job_status(second, cfg=ctx.settings).route == "sms"


# --- failover ----------------------------------------------------------------------------------


def test_when_the_circuit_opens_the_messages_leave_through_the_next_account(
    routed: tuple[Context, Providers],
) -> None:
    ctx, providers = routed
    providers.nx = lambda request: HttpResponse(503, {}, b"busy")
    job = send(ctx, PHONES)
    run(ctx)
    views = job_messages(job, cfg=ctx.settings)
    assert {(v.status, v.account) for v in views} == {("sent", "us")}
    # Each message went out once, through USpeedo; NXCloud only ever answered 503.
    us_phones = [
        t["Phone"]
        for r in providers.sent["us"]
        for c in json.loads(r.body)["TaskContent"]
        for t in c["Target"]
    ]
    assert sorted(us_phones) == sorted(p.lstrip("+") for p in PHONES)
    assert len(providers.sent["nx"]) == 1  # the failure that opened it; the rest moved
    [attempt] = views[0].history
    assert (attempt.account, attempt.outcome, attempt.error_code) == ("nx", "paused", "503")
    assert views[0].attempts == 1


def test_messages_waiting_on_a_paused_account_move_too(
    routed: tuple[Context, Providers],
) -> None:
    ctx, providers = routed
    ctx.settings = settings_for(ctx.settings.database_url, max_batch=2)
    providers.nx = lambda request: HttpResponse(503, {}, b"busy")
    job = send(ctx, PHONES)
    dispatch(ctx, "nx")  # one request of 2 fails and opens the circuit: all 5 move
    views = job_messages(job, cfg=ctx.settings)
    assert {(v.status, v.account) for v in views} == {("queued", "us")}
    codes = sorted(v.history[0].error_code or "" for v in views)
    assert codes == ["503", "503", "circuit_open", "circuit_open", "circuit_open"]
    run(ctx, rounds=2)
    assert job_status(job, cfg=ctx.settings).counts == {"sent": 5}
    assert len(providers.sent["nx"]) == 1


def test_a_refusal_worth_another_provider_moves_only_that_message(
    routed: tuple[Context, Providers],
) -> None:
    ctx, providers = routed
    refused = PHONES[0].lstrip("+")

    def nx(request: HttpRequest) -> HttpResponse:
        body = json.loads(request.body)
        data = [
            {
                "phone": i["phone"],
                "messageid": i["sysMessageId"],
                "status": "Failure" if i["phone"] == refused else "Success",
                "message": "Incorrect phone number format" if i["phone"] == refused else "",
            }
            for i in body["items"]
        ]
        return HttpResponse(200, {}, json.dumps({"code": 0, "data": data}).encode())

    providers.nx = nx
    job = send(ctx, PHONES)
    run(ctx)
    views = {v.phone: v for v in job_messages(job, cfg=ctx.settings)}
    assert {v.status for v in views.values()} == {"sent"}
    assert views[PHONES[0]].account == "us"
    assert [(a.account, a.outcome, a.error_code) for a in views[PHONES[0]].history] == [
        ("nx", "refused", "13005")
    ]
    assert {views[p].account for p in PHONES[1:]} == {"nx"}
    assert all(not views[p].history for p in PHONES[1:])


def test_a_refusal_at_the_last_account_fails_the_message(
    routed: tuple[Context, Providers],
) -> None:
    ctx, providers = routed
    ctx.settings = settings_for(ctx.settings.database_url, {"sms": {"accounts": ["nx"]}})
    providers.nx = lambda request: HttpResponse(
        200, {}, json.dumps({"code": 1102, "message": "insufficient balance"}).encode()
    )
    job = send(ctx, PHONES[:2])
    run(ctx, rounds=2)
    assert job_status(job, cfg=ctx.settings).counts == {"failed": 2}
    assert not providers.sent["us"]


def test_a_send_that_may_have_left_never_moves(routed: tuple[Context, Providers]) -> None:
    ctx, providers = routed

    def timeout(request: HttpRequest) -> HttpResponse:
        raise AmbiguousError("ReadTimeout", code="read_timeout")

    providers.nx = timeout
    job = send(ctx, PHONES[:3])
    run(ctx, rounds=3)
    views = job_messages(job, cfg=ctx.settings)
    assert {(v.status, v.account) for v in views} == {("unknown", "nx")}
    assert not providers.sent["us"]
    assert all(not v.history for v in views)
