"""The rules a webhook callback URL must meet without looking anything up: checked when a
job is enqueued (so a bad URL is refused with the job, not dead-lettered hours later) and
again by the worker before each delivery, which then also resolves the host.

A callback URL is chosen by whoever submits a job: without these rules a worker could be
made to POST into the private network it runs in (server-side request forgery).
"""

from __future__ import annotations

import ipaddress
from urllib.parse import SplitResult, urlsplit

#: Host names that always mean this machine.
_LOOPBACK_NAMES = ("localhost",)


def is_public_address(address: str) -> bool:
    """A routable unicast address (no private, loopback, link-local, reserved or multicast)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    return ip.is_global and not ip.is_multicast


def _literal_host_problem(host: str) -> str | None:
    """Why ``host`` is refused as a literal private name or address (None: not refused)."""
    if host in _LOOPBACK_NAMES or host.endswith(".localhost"):
        return f"host {host!r} is loopback"
    try:
        public = is_public_address(host)
    except ValueError:
        return None  # a name: only resolution (at delivery) can say where it points
    return None if public else f"non-public address {host} is not allowed"


def _split(url: str) -> tuple[SplitResult, int]:
    parts = urlsplit(url)
    port = parts.port  # raises ValueError for a port out of range or not a number
    return parts, port or (443 if parts.scheme == "https" else 80)


def url_problem(url: str, *, allow_http: bool, allow_private_networks: bool) -> str | None:
    """The rule ``url`` breaks, in words that never quote its query (which may hold a
    token), or None when it may be called (as far as can be told without resolving it)."""
    if any(c.isspace() or ord(c) < 32 for c in url):
        return "must not contain spaces or control characters"
    try:
        parts, _ = _split(url)
    except ValueError as exc:
        return f"not a valid URL ({exc})"
    allowed = ("https", "http") if allow_http else ("https",)
    if parts.scheme not in allowed:
        return f"scheme {parts.scheme!r} is not allowed (allowed: {', '.join(allowed)})"
    host = parts.hostname
    if not host:
        return "the URL has no host"
    if parts.username or parts.password:
        return "credentials in the URL are not allowed"
    if allow_private_networks:
        return None
    return _literal_host_problem(host)


def port_of(url: str) -> int:
    """The port a checked ``url`` is called on."""
    return _split(url)[1]


__all__ = ["is_public_address", "port_of", "url_problem"]
