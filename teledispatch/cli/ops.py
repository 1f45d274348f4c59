"""Operator verbs (flower, api, db): registered into the main CLI's parser.

Like ``worker`` and ``beat``, ``flower`` execs Celery by module name so the producer package
never imports worker code. The API and the migrations are imported only when their verb runs,
so ``teledispatch send`` does not pay for FastAPI or Alembic.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any

#: Namespace attribute that collects the options a pass-through verb does not know itself.
PASSTHROUGH = "passthrough"


class _PassthroughParser(argparse.ArgumentParser):
    """A verb parser that keeps options it does not know instead of refusing them.

    Flower has dozens of options (``--url_prefix``, ``--max_tasks``, ``--auth`` …) that change
    between releases; mirroring them here would rot. The main parser calls each verb's
    ``parse_known_args`` and rejects leftovers, so this parser hands its leftovers over in the
    namespace and reports none.
    """

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        ns, extra = super().parse_known_args(args, namespace)
        forwarded = [*getattr(ns, PASSTHROUGH, []), *extra]
        if forwarded[:1] == ["--"]:
            forwarded = forwarded[1:]
        setattr(ns, PASSTHROUGH, forwarded)
        return ns, []


def flower_argv(port: int, address: str | None, extra: Sequence[str]) -> list[str]:
    """The exec'd command line; separate from the exec so it can be tested."""
    argv = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "teledispatch.worker.tasks",
        "flower",
        f"--port={port}",
    ]
    if address:
        argv.append(f"--address={address}")
    return [*argv, *extra]


def cmd_flower(args: argparse.Namespace) -> int:
    # Credentials such as FLOWER_BASIC_AUTH travel in the environment (inherited by exec),
    # never on this command line, where `ps` would show them.
    argv = flower_argv(args.port, args.address, getattr(args, PASSTHROUGH, []))
    os.execvp(argv[0], argv)


def cmd_api(args: argparse.Namespace) -> int:
    from teledispatch.api.app import serve

    serve(host=args.host, port=args.port, log_level=args.log_level)
    return 0


def cmd_api_hash_key(args: argparse.Namespace) -> int:
    from teledispatch.api.app import hash_key

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


def register(sub: Any) -> None:
    """Add this module's verbs to ``sub`` (the CLI's subparsers)."""
    f = sub.add_parser(
        "flower",
        help="run Flower on the project's Celery app (other options go to Flower)",
        description=(
            "Flower on worker.tasks. Options not listed here are passed to Flower unchanged "
            "(e.g. --url_prefix=flower); credentials belong in FLOWER_BASIC_AUTH or "
            "FLOWER_AUTH in the environment, not on the command line."
        ),
    )
    f.__class__ = _PassthroughParser
    f.add_argument("--port", type=int, default=5555)
    f.add_argument("--address", help="interface to bind (Flower's default: all)")
    f.set_defaults(func=cmd_flower)

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
