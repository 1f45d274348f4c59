"""The signature (checked by a verifier written from the README's description), the retry
schedule (a passed clock), and which callback URLs may be called (a passed resolver)."""

from __future__ import annotations

import hashlib
import hmac
import socket
from typing import Any

import pytest

from teledispatch.config import WebhookSettings
from teledispatch.worker.webhooks.safety import UnsafeUrl, check_url
from teledispatch.worker.webhooks.schedule import backoff_s, next_attempt, retry_after_s
from teledispatch.worker.webhooks.signer import HEADER, signature

SECRET = b"whsec-test-1"


def verify(header: str, body: bytes, secret: bytes, now: float, tolerance: float = 300) -> bool:
    """The README's verifier: t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<body>">."""
    fields = dict(part.split("=", 1) for part in header.split(","))
    t = int(fields["t"])
    expected = hmac.new(secret, f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return abs(now - t) <= tolerance and hmac.compare_digest(expected, fields["v1"])


def test_signature_verifies_and_names_the_header() -> None:
    body = b'{"events":[{"id":"evt_1"}]}'
    header = signature(SECRET, body, 1_700_000_000)
    assert HEADER == "Teledispatch-Signature"
    assert header.startswith("t=1700000000,v1=")
    assert verify(header, body, SECRET, 1_700_000_010)


@pytest.mark.parametrize(
    ("body", "secret", "now"),
    [
        (b'{"events":[{"id":"evt_2"}]}', SECRET, 1_700_000_000),  # body changed
        (b'{"events":[{"id":"evt_1"}]}', b"other", 1_700_000_000),  # wrong secret
        (b'{"events":[{"id":"evt_1"}]}', SECRET, 1_700_001_000),  # too old: a replay
    ],
)
def test_a_changed_body_another_secret_or_an_old_time_fail(
    body: bytes, secret: bytes, now: float
) -> None:
    header = signature(SECRET, b'{"events":[{"id":"evt_1"}]}', 1_700_000_000)
    assert not verify(header, body, secret, now)


CFG = WebhookSettings(backoff_base_s=1.0, max_backoff_s=60.0, retry_window_s=100.0)


def test_backoff_doubles_up_to_the_maximum() -> None:
    assert [backoff_s(n, CFG) for n in range(1, 9)] == [1, 2, 4, 8, 16, 32, 60, 60]
    assert backoff_s(10_000, CFG) == 60.0


def test_retry_after_is_honoured_when_longer_than_the_backoff() -> None:
    at, dead = next_attempt(now=1000.0, attempts=1, first_failed_at=None, retry_after=30.0, cfg=CFG)
    assert (at, dead) == (1030.0, False)
    at, _ = next_attempt(now=1000.0, attempts=3, first_failed_at=990.0, retry_after=1.0, cfg=CFG)
    assert at == 1004.0


def test_dead_once_the_next_attempt_falls_past_the_window() -> None:
    # First failure at 1000; window 100 s.
    at, dead = next_attempt(
        now=1050.0, attempts=2, first_failed_at=1000.0, retry_after=None, cfg=CFG
    )
    assert (at, dead) == (1052.0, False)
    at, dead = next_attempt(
        now=1099.0, attempts=3, first_failed_at=1000.0, retry_after=None, cfg=CFG
    )
    assert (at, dead) == (1103.0, True)


def test_retry_after_as_seconds_or_http_date() -> None:
    assert retry_after_s("120", 0.0) == 120.0
    assert retry_after_s("Wed, 21 Oct 2015 07:28:00 GMT", 1445412470.0) == 10.0
    assert retry_after_s("soon", 0.0) is None
    assert retry_after_s(None, 0.0) is None


def _resolver(address: str) -> Any:
    def resolve(host: str, port: int) -> list[Any]:
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]

    return resolve


STRICT = WebhookSettings()


@pytest.mark.parametrize(
    ("url", "address", "reason"),
    [
        ("http://hooks.example/x", "93.184.216.34", "scheme 'http'"),
        ("ftp://hooks.example/x", "93.184.216.34", "scheme 'ftp'"),
        ("https://hooks.example/x", "127.0.0.1", "non-public address 127.0.0.1"),
        ("https://hooks.example/x", "10.1.2.3", "non-public address 10.1.2.3"),
        ("https://hooks.example/x", "169.254.169.254", "non-public address 169.254.169.254"),
        ("https://hooks.example/x", "::1", "non-public address ::1"),
        ("https://user:pw@hooks.example/x", "93.184.216.34", "credentials"),
        ("https:///x", "93.184.216.34", "no host"),
    ],
)
def test_unsafe_urls_are_refused(url: str, address: str, reason: str) -> None:
    with pytest.raises(UnsafeUrl, match=reason):
        check_url(url, STRICT, _resolver(address))


def test_public_https_passes_and_settings_open_http_and_private_networks() -> None:
    check_url("https://hooks.example/x?token=1", STRICT, _resolver("93.184.216.34"))
    local = WebhookSettings(allow_http=True, allow_private_networks=True)
    check_url("http://127.0.0.1:8080/hook", local, _resolver("127.0.0.1"))
    with pytest.raises(UnsafeUrl, match="non-public"):
        check_url(
            "http://127.0.0.1:8080/hook", WebhookSettings(allow_http=True), _resolver("127.0.0.1")
        )
