"""``teledispatch status | lookup | cancel``: read a job's outcome, find messages, stop a job."""

from __future__ import annotations

import argparse
import sys
import time
from typing import TYPE_CHECKING, Any

from teledispatch.cli.output import EXIT_INVALID, print_json
from teledispatch.statuses import ACTIVE_STATUSES

if TYPE_CHECKING:  # the verbs import what they read with when they run
    from teledispatch.outcomes import JobStatus, MessageView

#: How often ``status --wait`` asks the database.
WAIT_POLL_S = 0.5


def _progress_line(st: JobStatus) -> str:
    finished = sum(n for s, n in st.counts.items() if s not in ACTIVE_STATUSES)
    pct = 100.0 * finished / st.total if st.total else 100.0
    width = 30
    filled = int(width * pct / 100)
    counts = " ".join(f"{k}={v}" for k, v in st.counts.items())
    eta = f" eta {st.eta[11:19]}Z" if st.eta and not st.done else ""
    return f"[{'#' * filled}{'.' * (width - filled)}] {pct:5.1f}% {counts}{eta}"


def _wait_for(args: argparse.Namespace, tty: bool) -> JobStatus | None:
    """The job's status: at once, or (``--wait``) once done; None when it gave up (printed)."""
    from teledispatch.outcomes import JobNotFound

    deadline = time.monotonic() + args.timeout
    while True:
        try:
            st = _job_status(args.job_id)
        except JobNotFound as exc:
            print(f"error: {exc}", file=sys.stderr)
            return None
        if not args.wait or st.done:
            return st
        if time.monotonic() > deadline:
            print(f"error: job not done after {args.timeout:.0f}s", file=sys.stderr)
            return None
        if tty:
            print("\r" + _progress_line(st), end="", flush=True)
        time.sleep(WAIT_POLL_S)


def _job_status(job_id: str) -> JobStatus:
    """Read without SQLAlchemy when that answers as the full path would; else the full path."""
    from teledispatch import quick_reads

    st = quick_reads.job_status(job_id)
    if st is not None:
        return st
    from teledispatch.producer.lookup import job_status

    return job_status(job_id)


def _lookup(args: argparse.Namespace) -> list[MessageView]:
    """As :func:`_job_status`, for ``lookup``."""
    from teledispatch import quick_reads

    rows = quick_reads.lookup(phone=args.phone, provider_id=args.provider_id, limit=args.limit)
    if rows is not None:
        return rows
    from teledispatch.producer.lookup import lookup

    return lookup(phone=args.phone, provider_id=args.provider_id, limit=args.limit)


def _paused(account: str, route: str | None = None) -> str | None:
    """The circuit line of the job's account; of each paused account of a routed job's route."""
    from teledispatch import circuits
    from teledispatch.config import settings

    cfg = settings()
    if route is None or route not in cfg.routes:
        return circuits.describe(cfg.redis_url, account)
    lines = []
    for name in sorted(cfg.routes[route].all_accounts):
        line = circuits.describe(cfg.redis_url, name)
        if line is not None:
            lines.append(f"{name} {line}")
    return "; ".join(lines) or None


def cmd_status(args: argparse.Namespace) -> int:
    tty = sys.stdout.isatty() and not args.json
    st = _wait_for(args, tty)
    if st is None:
        return 1
    if tty and args.wait:
        print("\r" + _progress_line(st))
    # Only while the job still waits on its account: a finished job's account is no news
    # (and a finished job's status then needs no Redis client loaded).
    paused = None if st.done else _paused(st.account, st.route)
    if args.json:
        print_json({**st.as_dict(), "paused": paused})
        return 0
    via = f"route {st.route}" if st.route else f"{st.channel} via {st.account}"
    print(f"job {st.job_id} ({via}): {st.accepted}/{st.total} accepted")
    for status, n in st.counts.items():
        print(f"  {status:<12} {n:>9}")
    if st.segments:
        parts = ", ".join(f"{n} {enc}" for enc, n in st.segments.items())
        print(f"  segments     {sum(st.segments.values())} ({parts})")
    print("  done" if st.done else f"  in progress (next due {st.next_due_at or 'now'})")
    if not st.done:
        print(f"  eta          {st.eta or 'unknown (the account sets no rate limit)'}")
    if paused:
        print(f"  route {st.route}: {paused}" if st.route else f"  account {st.account} {paused}")
    return 0


def cmd_lookup(args: argparse.Namespace) -> int:
    from teledispatch.validation import ValidationFailed

    try:
        rows = _lookup(args)
    except ValidationFailed as exc:
        print(f"error: {'; '.join(str(p) for p in exc.problems)}", file=sys.stderr)
        return EXIT_INVALID
    if args.json:
        print_json([r.as_dict() for r in rows])
        return 0
    if not rows:
        print("no messages found")
    for r in rows:
        err = f" {r.error_code}: {r.error_text}" if r.error_code else ""
        seg = f" {r.segments}×{r.encoding}" if r.segments is not None else ""
        print(f"{r.created_at} {r.phone} {r.status:<10} job={r.job_id} id={r.id}{seg}{err}")
        if r.route is not None:
            for a in r.history:
                why = f" {a.error_code}: {a.error_text}" if a.error_code else ""
                print(f"    {a.at} via {a.account}: {a.outcome}{why}")
            print(f"    now via {r.account}: {r.status}")
    return 0


def cmd_cancel(args: argparse.Namespace) -> int:
    from teledispatch.producer.cancel import cancel_job
    from teledispatch.producer.lookup import JobNotFound

    try:
        result = cancel_job(args.job_id)
    except JobNotFound as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print_json({"job_id": result.job_id, "cancelled": result.cancelled})
    else:
        print(f"cancelled {result.cancelled} messages not yet claimed; the rest will finish")
    return 0


def cmd_retry(args: argparse.Namespace) -> int:
    from teledispatch.producer.lookup import JobNotFound
    from teledispatch.producer.retry import retry_job

    try:
        statuses = args.status or ["failed"]
        result = retry_job(args.job_id, statuses=statuses, error_codes=args.error_code or ())
    except JobNotFound as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print_json(result.as_dict())
        return 0
    print(f"retried {result.retried} messages as new attempts of job {result.job_id}")
    for skipped in result.skipped:
        print(f"  skipped {skipped.count}: {skipped.reason}")
    return 0


def register(sub: Any) -> None:
    """Add ``status``, ``lookup``, ``cancel`` and ``retry`` to ``sub`` (the CLI's
    subparsers)."""
    st = sub.add_parser("status", help="a job's counts per status")
    st.add_argument("job_id")
    st.add_argument("--json", action="store_true")
    st.add_argument("--wait", action="store_true", help="block until every message is final")
    st.add_argument("--timeout", type=float, default=3600.0, help="give up waiting after this")
    st.set_defaults(func=cmd_status)

    lk = sub.add_parser("lookup", help="messages to a phone, or by provider message id")
    group = lk.add_mutually_exclusive_group(required=True)
    group.add_argument("--phone")
    group.add_argument("--provider-id")
    lk.add_argument("--limit", type=int, default=20)
    lk.add_argument("--json", action="store_true")
    lk.set_defaults(func=cmd_lookup)

    c = sub.add_parser("cancel", help="cancel what a job has not sent yet")
    c.add_argument("job_id")
    c.add_argument("--json", action="store_true")
    c.set_defaults(func=cmd_cancel)

    r = sub.add_parser("retry", help="send a job's failed messages again, as new attempts")
    r.add_argument("job_id")
    r.add_argument(
        "--status",
        action="append",
        choices=["failed", "unknown"],
        help="which finished messages (default failed; unknown ones are counted, never resent)",
    )
    r.add_argument("--error-code", nargs="+", metavar="C", help="only messages with these codes")
    r.add_argument("--json", action="store_true")
    r.set_defaults(func=cmd_retry, status=None)
