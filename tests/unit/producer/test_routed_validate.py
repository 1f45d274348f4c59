"""A routed job's recipients validated as the account path validates them: ``{field}``
placeholders of the content filled from each recipient's fields."""

from __future__ import annotations

import pytest

from teledispatch.config import Settings, parse_config
from teledispatch.producer.routed import validate_route_job
from teledispatch.routes import Route, parse_routes
from teledispatch.validation import ValidationFailed

_ACCOUNT = {
    "channel": "nxcloud.sms",
    "base_url": "http://nx.test",
    "access_key": "ak",
    "secret": "sk",
    "app_key": "app",
}


def _route() -> tuple[Settings, Route]:
    accounts = parse_config({"accounts": {"a": dict(_ACCOUNT), "b": dict(_ACCOUNT)}})
    problems: list[str] = []
    routes = parse_routes(
        {"r": {"accounts": ["a", "b"]}}, {"a": "nxcloud.sms"} | {"b": "nxcloud.sms"}, problems
    )
    assert problems == []
    cfg = Settings(
        accounts=accounts, redis_url="redis://fake", database_url="sqlite://", routes=routes
    )
    return cfg, routes["r"]


def test_placeholders_render_from_each_recipients_fields() -> None:
    cfg, route = _route()
    rows = validate_route_job(
        cfg,
        route,
        [
            {"phone": "+8613900000000", "name": "Ann", "code": 1234},
            {"phone": "+8613900000001", "name": "Bo", "code": "9", "content": "{name}: {{x}}"},
        ],
        {"content": "Hi {name}, code {code}"},
        allow_duplicates=False,
    )
    assert rows == [
        (0, "+8613900000000", "Hi Ann, code 1234"),
        (1, "+8613900000001", "Bo: {x}"),
    ]


def test_a_missing_placeholder_value_is_a_problem_naming_the_field() -> None:
    cfg, route = _route()
    with pytest.raises(ValidationFailed) as failed:
        validate_route_job(
            cfg,
            route,
            [{"phone": "+8613900000000"}, {"phone": "+8613900000001", "name": "Bo"}],
            {"content": "Hi {name}"},
            allow_duplicates=False,
        )
    assert [(p.index, p.field) for p in failed.value.problems] == [(0, "name")]
    assert "missing" in failed.value.problems[0].rule


def test_a_field_no_template_uses_is_still_unknown() -> None:
    cfg, route = _route()
    with pytest.raises(ValidationFailed) as failed:
        validate_route_job(
            cfg, route, [{"phone": "+8613900000000", "nme": "x"}], {"content": "Hi"}, False
        )
    assert [(p.index, p.field) for p in failed.value.problems] == [(0, "nme")]


def test_content_hash_fed_row_by_row_is_the_whole_lists_hash() -> None:
    import hashlib
    import json

    from teledispatch.producer.routed import content_hash

    rows = [(0, "+8613900000000", 'é "q"\n'), (1, "+8613900000001", "b")]
    for tail in ([None, None, None, None, None], [1.5, "x", None, None, None, 2.0, "21:00-08:00"]):
        whole = json.dumps(
            ["sms", rows, *tail], ensure_ascii=False, separators=(",", ":"), sort_keys=True
        )
        assert content_hash("sms", rows, tail) == hashlib.sha256(whole.encode()).hexdigest()
    empty = json.dumps(["sms", [], None], separators=(",", ":"))
    assert content_hash("sms", [], [None]) == hashlib.sha256(empty.encode()).hexdigest()
