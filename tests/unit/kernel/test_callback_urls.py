"""The callback URL rules that need no lookup, shared by enqueue and delivery."""

from __future__ import annotations

import pytest

from teledispatch.callback_urls import url_problem

STRICT = {"allow_http": False, "allow_private_networks": False}


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("http://hooks.example/x", "scheme 'http' is not allowed (allowed: https)"),
        ("ftp://hooks.example/x", "scheme 'ftp'"),
        ("hooks.example/x", "scheme '' is not allowed"),
        ("https://127.0.0.1/x", "non-public address 127.0.0.1"),
        ("https://10.0.0.7:8443/x", "non-public address 10.0.0.7"),
        ("https://[::1]/x", "non-public address ::1"),
        ("https://169.254.169.254/latest", "non-public address 169.254.169.254"),
        ("https://localhost/x", "host 'localhost' is loopback"),
        ("https://user:pw@hooks.example/x", "credentials"),
        ("https:///x", "no host"),
        ("https://[::1/x", "not a valid URL"),
        ("https://hooks.example:99999/x", "not a valid URL"),
        ("https://hooks.example/a b", "spaces or control characters"),
    ],
)
def test_refused_urls_name_their_rule(url: str, says: str) -> None:
    problem = url_problem(url, **STRICT)
    assert problem is not None and says in problem


def test_public_https_and_names_pass_and_settings_open_the_rest() -> None:
    assert url_problem("https://hooks.example/x?token=1", **STRICT) is None
    # A name is only resolved at delivery: where it points may change.
    assert url_problem("https://internal.corp/x", **STRICT) is None
    assert url_problem("https://93.184.216.34/x", **STRICT) is None
    local = {"allow_http": True, "allow_private_networks": True}
    assert url_problem("http://127.0.0.1:8080/hook", **local) is None
    assert url_problem("http://127.0.0.1:8080/hook", allow_http=True, allow_private_networks=False)


def test_a_problem_never_quotes_the_query() -> None:
    problem = url_problem("http://hooks.example/x?token=s3cret", **STRICT)
    assert problem is not None and "s3cret" not in problem
