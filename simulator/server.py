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
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from types import FrameType
from typing import Any

import uvicorn

from teledispatch import clock
from teledispatch.simulator import fault_options
from teledispatch.simulator.app import ARRIVAL_EXTENSION, CONNECTION_EXTENSION, create_app
from teledispatch.simulator.config_file import render_config, write_config
from teledispatch.simulator.context import Sim, SimOptions
from teledispatch.simulator.faults import FaultConfig
from teledispatch.simulator.state import Credentials

LISTENING = "simulator listening on "
#: Longer than any client pool's idle time, so an idle keep-alive connection is never closed
#: by the simulator under a client that is about to reuse it (that would look like a drop).
KEEP_ALIVE_S = 120


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text} must be a positive integer")
    return value


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
    _add_fault_options(p)
    p.add_argument("--uspeedo-max-targets", type=_positive_int, default=1000)
    p.add_argument("--volc-region", default="cn-north-1")
    p.add_argument("--access-log", action="store_true", help="log every request (slow)")
    p.add_argument(
        "--log-level", default="warning", choices=["critical", "error", "warning", "info", "debug"]
    )
    return p


#: Help for each fault option; every one also takes ``CHANNEL=VALUE`` and may be repeated.
_FAULT_HELP: dict[str, str] = {
    "fail_rate": "share of requests answered --fail-status with the channel's own body",
    "fail_status": "HTTP status of --fail-rate answers (default 503)",
    "internal_error_rate": "share of requests answered HTTP 500 with the channel's own body",
    "item_fail_rate": "share of items failed one by one",
    "drop_response_rate": "share of processed requests whose connection is closed unanswered",
    "latency_ms": "delay before every provider answer",
    "timeout_rate": "share of requests held --timeout-ms unprocessed, then closed unanswered",
    "timeout_ms": "how long --timeout-rate holds a request (default 30000)",
    "tps": "requests per sliding second per channel and account before throttling",
    "recipient_cap": "accepted messages per number per window, e.g. 5/1h or 2/10s",
    "dr_delay_ms": "delay before NXCloud DRs / USpeedo receipts are final (default 1000)",
    "dr_fail_rate": "share of accepted messages whose DR/receipt says undelivered",
    "nx_rate_limit_rate": "share of NXCloud requests refused whole with code 13007",
    "nxcloud_plain_items": "NXCloud item messages as plain text, without the (NNNN) code suffix",
    "uspeedo_shape": "USpeedo answer shape: basic (FailedTargetPhones) or sdk (FailContent)",
    "uspeedo_partial_retcode": "RetCode of an sdk-shape answer where some numbers failed (0)",
    "unsupported_prefixes": "NXCloud: country prefixes it does not reach (e.g. 44,1): item 13005",
}


def _add_fault_options(p: argparse.ArgumentParser) -> None:
    for name in fault_options.OPTIONS:
        flag = "--" + name.replace("_", "-")
        if name == "nxcloud_plain_items":
            p.add_argument(
                flag,
                action="append",
                nargs="?",
                const="true",
                metavar="[CHANNEL=]true|false",
                help=_FAULT_HELP[name],
            )
            continue
        p.add_argument(flag, action="append", metavar="[CHANNEL=]VALUE", help=_FAULT_HELP[name])


def options_from_args(args: argparse.Namespace) -> SimOptions:
    """Raises ValueError naming the option when a fault value is wrong."""
    given = {
        name: getattr(args, name)
        for name in fault_options.OPTIONS
        if getattr(args, name) is not None
    }
    global_, channels = fault_options.from_command_line(given)
    faults = FaultConfig(**global_, seed=args.seed)
    for overrides in channels.values():
        replace(faults, **overrides)  # each channel's combination must be valid too
    return SimOptions(
        faults=faults,
        channel_faults=channels,
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
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        options = options_from_args(args)
    except ValueError as exc:
        parser.error(str(exc))
    credentials = Credentials.generate(args.seed)
    # The test clock integration tests move (teledispatch/clock.py), when one is set: the
    # workers sign requests with it, and arrivals are stamped in the time the test reasons in.
    sim = Sim(options, credentials, clock=clock.now if clock.is_moved() else time.time)
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
