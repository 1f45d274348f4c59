"""``teledispatch``: the command line for operators and scripts.

This module is the parser and the dispatch; each verb group lives in its own module:
``send`` (enqueue), ``jobs`` (status, lookup, cancel) and ``ops`` (worker, beat, flower, api,
db, demo). Only the core dependencies are imported until a verb that needs more runs.
"""

from __future__ import annotations

import argparse
import gc
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext

from teledispatch.cli import completion, export, jobs, ops, optouts, send, webhooks
from teledispatch.cli.extras import MissingExtra, require_extra
from teledispatch.cli.failures import VersionAction, database_problem
from teledispatch.cli.output import EXIT_INVALID
from teledispatch.config_file import ConfigError

#: Exit status when a verb's optional dependencies are not installed.
EXIT_MISSING_EXTRA = 3
#: The verbs typed most, which run for a moment and end: the garbage collector is paused
#: while they run (see :func:`collector_paused`).
QUICK_VERBS = frozenset({"status", "lookup", "send"})
#: The collector is back on after this long, however long the verb still runs (``status
#: --wait``, a big CSV).
GC_PAUSE_MAX_S = 1.0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="teledispatch",
        description="Enqueue send jobs, run workers and the simulator, look up outcomes.",
    )
    p.add_argument("--version", action=VersionAction)
    sub = p.add_subparsers(dest="verb", required=True)
    send.register(sub)
    jobs.register(sub)
    ops.register(sub)
    webhooks.register(sub)
    optouts.register(sub)
    export.register(sub)
    completion.register(sub, build_parser)
    return p


def parse(argv: Sequence[str]) -> argparse.Namespace:
    """Parse as ``teledispatch`` does: options a pass-through verb (``flower``) does not know
    are collected for it, while any other verb refuses them as argparse would."""
    parser = build_parser()
    args, extra = parser.parse_known_args(list(argv))
    if not hasattr(args, ops.PASSTHROUGH):
        if extra:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        return args
    setattr(args, ops.PASSTHROUGH, extra[1:] if extra[:1] == ["--"] else extra)
    return args


def cmd_simulate(rest: list[str]) -> int:
    # The simulator owns its options: everything after the verb is its command line.
    require_extra("server", "`teledispatch simulate`")
    from teledispatch.simulator.server import main as simulate

    return int(simulate(rest))


@contextmanager
def collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off for at most :data:`GC_PAUSE_MAX_S`.

    A quick verb spends most of its time importing SQLAlchemy, pydantic and phonenumbers, whose
    objects live as long as the process: the collector went through them some seventy times
    per call, once through all of them (20-40 ms of ~0.5 s), and found next to nothing to
    free. Garbage made meanwhile is collected once the collector is back on."""
    if not gc.isenabled():  # a caller's choice: left as it is
        yield
        return
    gc.disable()
    timer = threading.Timer(GC_PAUSE_MAX_S, gc.enable)
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()
        gc.enable()


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv and argv[0] == "simulate":
            return cmd_simulate(argv[1:])
        # The verb is the first word: nothing before it but --help or --version.
        with collector_paused() if argv[:1] and argv[0] in QUICK_VERBS else nullcontext():
            args = parse(argv)
            return int(args.func(args))
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INVALID
    except MissingExtra as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_MISSING_EXTRA
    except Exception as exc:
        problem = database_problem(exc)
        if problem is None:
            raise
        print(f"error: {problem}", file=sys.stderr)
        return EXIT_INVALID


if __name__ == "__main__":
    sys.exit(main())


__all__ = ["build_parser", "main", "parse"]
