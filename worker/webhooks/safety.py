"""Which callback URLs may be called: ``https`` only and public addresses only, unless the
``[webhooks]`` settings allow more (tests, local receivers).

The rules that need no lookup live in the kernel (:mod:`teledispatch.callback_urls`): the
producer applies them at enqueue. Here they are applied again (the config may have changed
since) and the host is resolved, since a public name may point at a private address.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from teledispatch.callback_urls import is_public_address, port_of, url_problem
from teledispatch.config import WebhookSettings
from teledispatch.errors import Error


class UnsafeUrl(Error, ValueError):
    """The URL may not be called; the message says why (never the URL's query)."""


Resolver = Callable[[str, int], list[Any]]


def _resolve(host: str, port: int) -> list[Any]:
    return socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)


def check_url(url: str, cfg: WebhookSettings, resolve: Resolver = _resolve) -> None:
    """Raise :class:`UnsafeUrl` unless ``url`` may be called under ``cfg``."""
    problem = url_problem(
        url, allow_http=cfg.allow_http, allow_private_networks=cfg.allow_private_networks
    )
    if problem:
        raise UnsafeUrl(problem)
    if cfg.allow_private_networks:
        return
    host = str(urlsplit(url).hostname)
    try:
        infos = resolve(host, port_of(url))
    except OSError as exc:
        raise UnsafeUrl(f"host {host!r} does not resolve: {exc}") from None
    for info in infos:
        address = str(info[4][0])
        if not is_public_address(address):
            raise UnsafeUrl(f"host {host!r} resolves to non-public address {address}")


__all__ = ["Resolver", "UnsafeUrl", "check_url"]
