"""Which callback URLs may be called: ``https`` only and public addresses only, unless the
``[webhooks]`` settings allow more (tests, local receivers).

A callback URL is chosen by whoever submits a job: without this, the worker could be made
to POST into the private network it runs in (server-side request forgery).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from teledispatch.config import WebhookSettings
from teledispatch.errors import Error


class UnsafeUrl(Error, ValueError):
    """The URL may not be called; the message says why (never the URL's query)."""


Resolver = Callable[[str, int], list[Any]]


def _resolve(host: str, port: int) -> list[Any]:
    return socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)


def _public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    return ip.is_global and not ip.is_multicast


def check_url(url: str, cfg: WebhookSettings, resolve: Resolver = _resolve) -> None:
    """Raise :class:`UnsafeUrl` unless ``url`` may be called under ``cfg``."""
    parts = urlsplit(url)
    allowed = ("https", "http") if cfg.allow_http else ("https",)
    if parts.scheme not in allowed:
        raise UnsafeUrl(f"scheme {parts.scheme!r} is not allowed (allowed: {', '.join(allowed)})")
    host = parts.hostname
    if not host:
        raise UnsafeUrl("the URL has no host")
    if parts.username or parts.password:
        raise UnsafeUrl("credentials in the URL are not allowed")
    if cfg.allow_private_networks:
        return
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        infos = resolve(host, port)
    except OSError as exc:
        raise UnsafeUrl(f"host {host!r} does not resolve: {exc}") from None
    for info in infos:
        address = str(info[4][0])
        if not _public(address):
            raise UnsafeUrl(f"host {host!r} resolves to non-public address {address}")


__all__ = ["Resolver", "UnsafeUrl", "check_url"]
