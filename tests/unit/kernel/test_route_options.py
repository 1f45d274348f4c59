"""A route's own quiet hours (between a job's and its account's) and the job-wide options a
routed job is refused for before any recipient is read, as an account's job is."""

from __future__ import annotations

from pathlib import Path

import pytest

from teledispatch.config import Settings, parse_config
from teledispatch.producer.routed import enqueue_route
from teledispatch.quiet_hours import resolve
from teledispatch.routes import parse_routes
from teledispatch.validation import ValidationFailed

_CHANNELS = {"a": "nxcloud.sms", "b": "nxcloud.sms"}


def test_a_route_may_set_quiet_hours_in_canonical_form() -> None:
    problems: list[str] = []
    routes = parse_routes(
        {"r": {"accounts": ["a", "b"], "quiet_hours": " 21:00-08:00 "}}, _CHANNELS, problems
    )
    assert problems == []
    assert routes["r"].quiet_hours == "21:00-08:00"
    assert routes["r"].accounts_for("+8613900000000") == ("a", "b")


@pytest.mark.parametrize("value", ["25:00-08:00", 2100, "evening"])
def test_a_bad_quiet_hours_of_a_route_is_named(value: object) -> None:
    problems: list[str] = []
    parse_routes({"r": {"accounts": ["a"], "quiet_hours": value}}, _CHANNELS, problems)
    assert len(problems) == 1
    assert problems[0].startswith("routes.r.quiet_hours: ")


def test_the_job_wins_then_the_route_then_the_account_and_never_for_high() -> None:
    assert resolve("01:00-02:00", "05:00-06:00", "normal", "03:00-04:00") == "01:00-02:00"
    assert resolve(None, "05:00-06:00", "low", "03:00-04:00") == "03:00-04:00"
    assert resolve(None, "05:00-06:00", "normal", None) == "05:00-06:00"
    assert resolve("01:00-02:00", "05:00-06:00", "high", "03:00-04:00") is None


def test_a_routed_job_with_a_private_callback_url_is_refused_before_its_recipients(
    tmp_path: Path,
) -> None:
    account = {"channel": "nxcloud.sms", "base_url": "http://nx.test"}
    accounts = parse_config({"accounts": {"a": account, "b": dict(account)}})
    routes = parse_routes({"r": {"accounts": ["a", "b"]}}, _CHANNELS, [])
    cfg = Settings(
        accounts=accounts,
        routes=routes,
        redis_url="redis://unused",
        database_url=f"sqlite:///{tmp_path / 'never-created.db'}",
    )
    with pytest.raises(ValidationFailed) as caught:
        enqueue_route("r", [{"phone": "not a number"}], callback_url="http://127.0.0.1/x", cfg=cfg)
    assert [p.field for p in caught.value.problems] == ["callback_url"]
    assert not (tmp_path / "never-created.db").exists()  # nothing was stored


def test_a_route_may_set_its_webhook_default_and_secret_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ROUTE_HOOK_SECRET", "whsec-route-7c1")
    problems: list[str] = []
    table = {
        "accounts": ["a", "b"],
        "callback_url": "https://hooks.example/r",
        "callback_secret": "ENV:ROUTE_HOOK_SECRET",
    }
    routes = parse_routes({"r": table}, _CHANNELS, problems)
    assert problems == []
    assert routes["r"].callback_url == "https://hooks.example/r"
    assert routes["r"].callback_secret == "whsec-route-7c1"
    assert "whsec-route-7c1" not in repr(routes["r"])  # a logged route shows no secret


def test_a_route_named_with_an_at_sign_or_a_missing_secret_variable_is_named(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("NO_SUCH_ROUTE_SECRET", raising=False)
    problems: list[str] = []
    parse_routes(
        {"r@x": {"accounts": ["a"], "callback_secret": "ENV:NO_SUCH_ROUTE_SECRET"}},
        _CHANNELS,
        problems,
    )
    assert problems == [
        "routes.r@x: a route's name may not contain '@'",
        "routes.r@x.callback_secret: environment variable NO_SUCH_ROUTE_SECRET is not set",
    ]
