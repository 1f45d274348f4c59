"""Operator verbs: worker, beat, flower, api, db, demo — registered into the main CLI's parser.

``worker``, ``beat`` and ``flower`` exec Celery on ``teledispatch.worker.tasks`` by module name
rather than importing it, so the CLI's own process never loads worker code. The API, the
migrations and the demo are imported only when their verb runs, so ``teledispatch send``
does not pay for FastAPI or Alembic, and works with the core dependencies alone.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any

from teledispatch.cli.extras import require_extra

#: Namespace attribute holding the options a pass-through verb forwards (see ``main.parse``).
PASSTHROUGH = "passthrough"
CELERY_APP = "teledispatch.worker.tasks"


def _celery(argv: Sequence[str]) -> int:
    require_extra("server", "the worker")
    os.execvp(sys.executable, [sys.executable, "-m", "celery", "-A", CELERY_APP, *argv])


def cmd_worker(args: argparse.Namespace) -> int:
    argv = ["worker", "--loglevel", args.loglevel, "--concurrency", str(args.concurrency)]
    argv += ["-E", "--without-gossip", "--without-mingle"]
    if args.hostname:
        argv += ["--hostname", args.hostname]
    if args.queues:
        argv += ["--queues", args.queues]
    if args.beat:
        argv += ["--beat", "--schedule", args.schedule]
    if args.metrics_port is not None:
        _metrics_env(args.metrics_port, args.metrics_host)
    return _celery(argv)


def cmd_worker_health(args: argparse.Namespace) -> int:
    """Exit 0 if the database and Redis a worker uses answer; else 1, one line per problem.
    The compose healthcheck and the k8s readiness probe run it beside ``celery inspect ping``
    (which answers even while the worker cannot reach its database)."""
    from teledispatch.config import settings
    from teledispatch.worker.health import problems

    found = problems(settings())
    for line in found:
        print(f"unhealthy: {line}", file=sys.stderr)
    if not found:
        print("ok: database and redis answer")
    return 1 if found else 0


def _metrics_env(port: int, host: str) -> None:
    """Multiprocess Prometheus metrics for the worker about to be exec'ed.

    ``PROMETHEUS_MULTIPROC_DIR`` must be in the environment before any process of the worker
    imports prometheus_client, so it is set here, before Celery starts: a fresh temporary
    directory per run, or ``TELEDISPATCH_METRICS_DIR`` (one per worker; its stale value files
    are cleared at start). The worker's main process serves the port (``worker.metrics``).
    """
    import tempfile

    directory = os.environ.get("TELEDISPATCH_METRICS_DIR") or tempfile.mkdtemp(
        prefix="teledispatch-metrics-"
    )
    os.makedirs(directory, exist_ok=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
    os.environ["TELEDISPATCH_METRICS_PORT"] = str(port)
    os.environ["TELEDISPATCH_METRICS_HOST"] = host


def cmd_beat(args: argparse.Namespace) -> int:
    return _celery(["beat", "--loglevel", args.loglevel, "--schedule", args.schedule])


def flower_argv(port: int, address: str | None, extra: Sequence[str]) -> list[str]:
    """The exec'd command line; separate from the exec so it can be tested."""
    argv = [sys.executable, "-m", "celery", "-A", CELERY_APP, "flower", f"--port={port}"]
    if address:
        argv.append(f"--address={address}")
    return [*argv, *extra]


def cmd_flower(args: argparse.Namespace) -> int:
    require_extra("flower", "`teledispatch flower`")
    # Credentials such as FLOWER_BASIC_AUTH travel in the environment (inherited by exec),
    # never on this command line, where `ps` would show them.
    argv = flower_argv(args.port, args.address, getattr(args, PASSTHROUGH, []))
    os.execvp(argv[0], argv)


def cmd_api(args: argparse.Namespace) -> int:
    require_extra("server", "`teledispatch api`")
    from teledispatch.api.app import serve

    serve(host=args.host, port=args.port, log_level=args.log_level)
    return 0


def cmd_api_hash_key(args: argparse.Namespace) -> int:
    from teledispatch.api.auth import hash_key

    key = args.key
    if key == "-":
        key = sys.stdin.readline().rstrip("\n")
    if not key:
        print("error: the key is empty", file=sys.stderr)
        return 2
    print(hash_key(key))
    return 0


def _database_url(args: argparse.Namespace) -> str:
    # Straight from the environment, not settings(): a migrate job needs the database only,
    # not the account config and the provider secrets it names.
    from teledispatch.config import DEFAULT_DATABASE_URL

    url: str = args.url or os.environ.get("DATABASE_URL", DEFAULT_DATABASE_URL)
    return url


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    from teledispatch.db.migrate import upgrade

    applied = upgrade(_database_url(args), revision=args.revision)
    print(f"database at revision {applied}")
    return 0


def cmd_db_current(args: argparse.Namespace) -> int:
    from teledispatch.db.migrate import current_revision

    print(current_revision(_database_url(args)) or "none")
    return 0


def cmd_db_purge(args: argparse.Namespace) -> int:
    import time

    from teledispatch.config import parse_window, settings
    from teledispatch.db.engine import get_engine
    from teledispatch.db.migrate import ensure_schema
    from teledispatch.retention import FULL_SPEED, Cutoffs, Pace, account_cutoffs, purge

    now = time.time()
    cutoff: float | Cutoffs
    if args.older_than is None:
        cutoff = account_cutoffs(settings(), now)  # each account's retention_days
    else:
        try:
            cutoff = now - parse_window(args.older_than)
        except ValueError as exc:
            print(f"error: --older-than: {exc}", file=sys.stderr)
            return 2
    url = _database_url(args)
    ensure_schema(url)
    engine = get_engine(url)
    pace = FULL_SPEED if args.full_speed else Pace.of(engine)
    report = purge(engine, cutoff, dry_run=args.dry_run, pace=pace)
    verb = "would remove" if args.dry_run else "removed"
    print(f"{verb} {len(report.jobs)} jobs, {report.messages} messages, {report.events} events")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    require_extra("server", "`teledispatch demo`")
    from teledispatch.dev.demo import run_demo

    return run_demo(recipients=args.recipients, singles=args.singles, timeout=args.timeout)


def _register_celery(sub: Any) -> None:
    w = sub.add_parser("worker", help="run a Celery worker (all queues unless --queues)")
    w.add_argument("--concurrency", type=int, default=os.cpu_count() or 2)
    w.add_argument("--queues", help="comma-separated queues (default: all)")
    w.add_argument("--hostname")
    w.add_argument("--beat", action="store_true", help="also run the sweep schedule (one only)")
    w.add_argument("--schedule", default=".teledispatch-beat-schedule")
    w.add_argument("--loglevel", default="INFO")
    w.add_argument(
        "--metrics-port",
        type=int,
        metavar="P",
        help="serve Prometheus metrics of every pool process on this port (/metrics)",
    )
    w.add_argument(
        "--metrics-host", default="127.0.0.1", help="address for --metrics-port (127.0.0.1)"
    )
    w.set_defaults(func=cmd_worker)

    wh = sub.add_parser(
        "worker-health", help="exit 1 naming what a worker cannot reach (database, redis)"
    )
    wh.set_defaults(func=cmd_worker_health)

    b = sub.add_parser("beat", help="run the sweep schedule (exactly one per deployment)")
    b.add_argument("--schedule", default=".teledispatch-beat-schedule")
    b.add_argument("--loglevel", default="INFO")
    b.set_defaults(func=cmd_beat)

    f = sub.add_parser(
        "flower",
        help="run Flower on the project's Celery app (other options go to Flower)",
        description=(
            "Flower on teledispatch.worker.tasks. Options not listed here are passed to Flower "
            "unchanged (e.g. --url_prefix=flower); credentials belong in FLOWER_BASIC_AUTH or "
            "FLOWER_AUTH in the environment, not on the command line."
        ),
    )
    f.add_argument("--port", type=int, default=5555)
    f.add_argument("--address", help="interface to bind (Flower's default: all)")
    # Flower has dozens of options that change between releases; mirroring them here would
    # rot, so the ones this parser does not know are forwarded (main.parse collects them).
    f.set_defaults(func=cmd_flower, **{PASSTHROUGH: []})


def register(sub: Any) -> None:
    """Add this module's verbs to ``sub`` (the CLI's subparsers)."""
    _register_celery(sub)

    a = sub.add_parser("api", help="serve the HTTP API (or: api hash-key KEY)")
    a.add_argument("--host", default="127.0.0.1")
    a.add_argument("--port", type=int, default=8000)
    a.add_argument("--log-level", default="info")
    a.set_defaults(func=cmd_api)
    api_sub = a.add_subparsers(dest="api_verb")
    hk = api_sub.add_parser(
        "hash-key", help="print the sha256: form of an API key for [api] keys in the config"
    )
    hk.add_argument("key", help="the key clients will send; '-' reads it from stdin")
    hk.set_defaults(func=cmd_api_hash_key)

    d = sub.add_parser("db", help="database schema migrations")
    db_sub = d.add_subparsers(dest="db_verb", required=True)
    up = db_sub.add_parser("upgrade", help="migrate the database to the newest schema")
    up.add_argument("--url", help="database URL (default: DATABASE_URL)")
    up.add_argument("--revision", default="head")
    up.set_defaults(func=cmd_db_upgrade)
    cur = db_sub.add_parser("current", help="print the database's schema revision")
    cur.add_argument("--url", help="database URL (default: DATABASE_URL)")
    cur.set_defaults(func=cmd_db_current)
    pg = db_sub.add_parser("purge", help="remove finished jobs past their retention")
    pg.add_argument(
        "--older-than",
        metavar="AGE",
        help="e.g. 30d, 12h, for every account (default: each account's retention_days)",
    )
    pg.add_argument("--dry-run", action="store_true", help="list what would go; remove nothing")
    pg.add_argument(
        "--full-speed",
        action="store_true",
        help="never pause (default: while requests are in flight, work a fifth of the time)",
    )
    pg.add_argument("--url", help="database URL (default: DATABASE_URL)")
    pg.set_defaults(func=cmd_db_purge)

    sub.add_parser("simulate", help="run the provider simulator (see simulate --help)")

    demo = sub.add_parser("demo", help="run the whole pipeline on embedded defaults")
    demo.add_argument("--recipients", type=int, default=20_000)
    demo.add_argument("--singles", type=int, default=50)
    demo.add_argument("--timeout", type=float, default=100.0)
    demo.set_defaults(func=cmd_demo)
