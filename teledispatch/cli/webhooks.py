"""``teledispatch webhooks``: the outbox's counts, its dead letters, and replaying them."""

from __future__ import annotations

import argparse
import time
from typing import Any

from teledispatch.cli.output import print_json


def _engine() -> Any:
    # Imported here: the CLI loads the database layer only for a verb that uses it.
    from teledispatch.config import settings
    from teledispatch.db.engine import get_engine
    from teledispatch.db.migrate import ensure_schema

    url = settings().database_url
    ensure_schema(url)
    return get_engine(url)


def cmd_webhooks_status(args: argparse.Namespace) -> int:
    from teledispatch.db import events as events_db

    engine = _engine()
    counts = events_db.counts(engine)
    dead = [r._asdict() for r in events_db.list_dead(engine, args.limit)]
    if args.json:
        print_json({"counts": counts, "dead": dead})
        return 0
    for state in (events_db.PENDING, events_db.DELIVERED, events_db.DEAD):
        print(f"{state:10} {counts.get(state, 0)}")
    for row in dead:
        print(f"dead {row['event_id']} {row['type']} job={row['job_id']}: {row['last_error']}")
    return 0


def cmd_webhooks_replay(args: argparse.Namespace) -> int:
    from teledispatch.db import events as events_db

    n = events_db.replay_dead(_engine(), time.time(), job_id=args.job)
    if args.json:
        print_json({"replayed": n})
    else:
        print(f"{n} dead events queued again")
    return 0


def register(sub: Any) -> None:
    w = sub.add_parser("webhooks", help="status webhooks: counts, dead letters, replay")
    w_sub = w.add_subparsers(dest="webhooks_verb", required=True)
    st = w_sub.add_parser("status", help="events per state and the dead-lettered ones")
    st.add_argument("--limit", type=int, default=20, help="dead events to list")
    st.add_argument("--json", action="store_true")
    st.set_defaults(func=cmd_webhooks_status)
    rp = w_sub.add_parser("replay", help="queue dead-lettered events again (fresh retry window)")
    rp.add_argument("--job", metavar="JOB_ID", help="only this job's events")
    rp.add_argument("--json", action="store_true")
    rp.set_defaults(func=cmd_webhooks_replay)
