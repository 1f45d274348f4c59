"""``teledispatch simulate``: run the provider simulator on one port.

The socket is bound before anything is printed, so when a parent process reads the
``simulator listening on URL`` line a connection to URL is already accepted by the kernel.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import signal
import socket
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

import uvicorn

from teledispatch.simulator.app import ARRIVAL_EXTENSION, CONNECTION_EXTENSION, create_app
from teledispatch.simulator.config_file import render_config, write_config
from teledispatch.simulator.context import Sim, SimOptions
from teledispatch.simulator.faults import FaultConfig, parse_recipient_cap
from teledispatch.simulator.state import Credentials

LISTENING = "simulator listening on "
#: Longer than any client pool's idle time, so an idle keep-alive connection is never closed
#: by the simulator under a client that is about to reuse it (that would look like a drop).
KEEP_ALIVE_S = 120


def _rate(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text} is not a share between 0 and 1")
    return value


def _non_negative(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} must not be negative")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text} must be a positive integer")
    return value


def _cap(text: str) -> Any:
    try:
        return parse_recipient_cap(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="teledispatch simulate",
        description="Local fake of the NXCloud, USpeedo and Volcengine VMS provider APIs.",
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0 picks a free port (default)")
    p.add_argument(
        "--write-config",
        type=Path,
        metavar="FILE",
        help="write a TOML config with accounts pointing at this simulator",
    )
    p.add_argument("--seed", type=int, help="reproducible randomness and credentials")
    p.add_argument(
        "--fail-rate",
        type=_rate,
        default=0.0,
        help="share of requests answered HTTP 503 with the channel's own body",
    )
    p.add_argument(
        "--internal-error-rate",
        type=_rate,
        default=0.0,
        help="share of requests answered HTTP 500 with the channel's own body",
    )
    p.add_argument(
        "--item-fail-rate", type=_rate, default=0.0, help="share of items failed one by one"
    )
    p.add_argument(
        "--latency-ms", type=_non_negative, default=0.0, help="delay before every provider answer"
    )
    p.add_argument(
        "--tps",
        type=_positive_int,
        help="requests per sliding second per channel and account before throttling",
    )
    p.add_argument(
        "--recipient-cap",
        type=_cap,
        metavar="C/WINDOW",
        help="accepted messages per number per window, e.g. 5/1h or 2/10s",
    )
    p.add_argument(
        "--drop-response-rate",
        type=_rate,
        default=0.0,
        help="share of processed requests whose connection is closed unanswered",
    )
    p.add_argument(
        "--dr-delay-ms",
        type=_non_negative,
        default=1000.0,
        help="delay before NXCloud DRs / USpeedo receipts are final",
    )
    p.add_argument(
        "--dr-fail-rate",
        type=_rate,
        default=0.0,
        help="share of accepted messages whose DR/receipt says undelivered",
    )
    p.add_argument("--uspeedo-max-targets", type=_positive_int, default=1000)
    p.add_argument("--volc-region", default="cn-north-1")
    p.add_argument("--access-log", action="store_true", help="log every request (slow)")
    p.add_argument(
        "--log-level", default="warning", choices=["critical", "error", "warning", "info", "debug"]
    )
    return p


def options_from_args(args: argparse.Namespace) -> SimOptions:
    faults = FaultConfig(
        fail_rate=args.fail_rate,
        internal_error_rate=args.internal_error_rate,
        item_fail_rate=args.item_fail_rate,
        drop_response_rate=args.drop_response_rate,
        latency_ms=args.latency_ms,
        tps=args.tps,
        recipient_cap=args.recipient_cap,
        dr_delay_ms=args.dr_delay_ms,
        dr_fail_rate=args.dr_fail_rate,
        seed=args.seed,
    )
    return SimOptions(
        faults=faults,
        uspeedo_max_targets=args.uspeedo_max_targets,
        volc_region=args.volc_region,
    )


def _protocol_class(clock: Callable[[], float]) -> type[asyncio.Protocol] | str:
    """httptools protocol that exposes each connection's transport, for dropped responses, and
    stamps each request's arrival with ``clock`` as soon as its first bytes are parsed."""
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    except ImportError:  # pragma: no cover - uvicorn[standard] brings httptools
        return "auto"

    class DropCapableProtocol(HttpToolsProtocol):
        def on_message_begin(self) -> None:
            # First: the stamp must not include the time uvicorn takes to set up the request.
            arrived = clock()
            super().on_message_begin()
            self.scope["extensions"] = {
                CONNECTION_EXTENSION: {"transport": self.transport},
                ARRIVAL_EXTENSION: {"t": arrived},
            }

    return DropCapableProtocol


def bind_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.setblocking(False)
    return sock


def public_url(host: str, port: int) -> str:
    if host in ("0.0.0.0", ""):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


async def _serve(server: uvicorn.Server, sock: socket.socket) -> None:
    await server.serve(sockets=[sock])


def _runner() -> asyncio.Runner:
    try:
        import uvloop
    except ImportError:  # pragma: no cover
        return asyncio.Runner()
    return asyncio.Runner(loop_factory=uvloop.new_event_loop)


class _Stopped(Exception):
    """SIGINT/SIGTERM: the normal way to end the simulator, so ``main`` returns 0."""


def _stop(signum: int, frame: FrameType | None) -> None:
    # uvicorn shuts down gracefully on these signals, then re-raises them to the handlers it
    # found installed: this one turns that into a clean return instead of a death by signal.
    raise _Stopped


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        options = options_from_args(args)
    except ValueError as exc:
        print(f"simulate: {exc}", file=sys.stderr)
        return 2
    credentials = Credentials.generate(args.seed)
    sim = Sim(options, credentials)
    try:
        sock = bind_socket(args.host, args.port)
    except OSError as exc:
        print(f"simulate: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    url = public_url(args.host, sock.getsockname()[1])
    if args.write_config is not None:
        write_config(args.write_config, render_config(url, credentials, options))
    config = uvicorn.Config(
        create_app(sim),
        http=_protocol_class(sim.clock),
        lifespan="on",
        log_level=args.log_level,
        access_log=args.access_log,
        timeout_keep_alive=KEEP_ALIVE_S,
        backlog=2048,
    )
    server = uvicorn.Server(config)
    # Everything imported so far (~100k objects: uvicorn, starlette, httpx...) lives as long as
    # the process: keep the cyclic collector from walking it in every full collection, a pause
    # during which arriving requests would wait to be stamped.
    gc.freeze()
    previous: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():
        previous = {sig: signal.signal(sig, _stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        print(LISTENING + url, flush=True)
        with _runner() as runner:
            runner.run(_serve(server, sock))
    except _Stopped:
        pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        sock.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
