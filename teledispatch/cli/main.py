"""``teledispatch``: the command line for operators and scripts.

The worker and beat verbs exec Celery on ``worker.tasks`` rather than importing it, so the
producer package stays free of worker code (the dependency runs one way only).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from teledispatch.config import ConfigError, settings
from teledispatch.producer.jobs import SendJob
from teledispatch.producer.lookup import JobNotFound, JobStatus, job_status, lookup
from teledispatch.producer.submit import IdempotencyConflict, enqueue_stream, validate_stream
from teledispatch.validation import ValidationFailed

EXIT_INVALID = 2


def _print_json(value: Any) -> None:
    print(json.dumps(value, ensure_ascii=False, default=str))


def _parse_default(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"{text!r} must be FIELD=VALUE")
    return key, value


def csv_rows(path: Path, progress: bool = False) -> Iterator[dict[str, Any]]:
    """Rows as recipients; empty cells are left out so job defaults apply to them.

    With ``progress`` (a terminal), a line on stderr shows how far into the file we are, by
    bytes read, so a million-row file shows movement without being counted first.
    """
    size = max(path.stat().st_size, 1)
    with path.open(newline="", encoding="utf-8-sig") as fh:
        for n, row in enumerate(csv.DictReader(fh), start=1):
            if progress and n % 20_000 == 0:
                pct = 100.0 * os.lseek(fh.fileno(), 0, os.SEEK_CUR) / size
                print(f"\r  reading {path.name}: {n:,} rows ({pct:4.1f}%)", end="", file=sys.stderr)
            yield {k: v for k, v in row.items() if k and v not in (None, "")}
    if progress:
        print(f"\r  reading {path.name}: done{' ' * 30}", file=sys.stderr)


def _report_invalid(exc: ValidationFailed, csv_mode: bool) -> int:
    noun = "problem" if exc.total == 1 else "problems"
    print(f"error: job rejected, nothing was enqueued ({exc.total} {noun}):", file=sys.stderr)
    for p in exc.problems:
        where = p.field
        if p.index is not None:
            where = f"row {p.index + 2}" if csv_mode else f"recipients[{p.index}]"
            where += f" {p.field}"
        print(f"  {where} = {p.value!r}: {p.rule}", file=sys.stderr)
    if exc.total > len(exc.problems):
        print(f"  … and {exc.total - len(exc.problems)} more", file=sys.stderr)
    return EXIT_INVALID


def cmd_send(args: argparse.Namespace) -> int:  # noqa: C901  (phase-1 move; being split)
    defaults: dict[str, Any] = dict(args.default or [])
    for flag, field in (
        ("content", "content"),
        ("template_id", "template_id"),
        ("sender_id", "sender_id"),
        ("task_open_id", "task_open_id"),
    ):
        if getattr(args, flag) is not None:
            defaults[field] = getattr(args, flag)
    if args.param is not None:
        defaults["template_params"] = list(args.param)
    not_before = datetime.fromisoformat(args.not_before) if args.not_before else None
    recipients: Any
    account = args.account
    key = args.idempotency_key
    allow_duplicates = args.allow_duplicates
    if args.job:
        job = SendJob.model_validate_json(Path(args.job).read_text(encoding="utf-8"))
        account = account or job.account
        recipients = job.recipients
        defaults = {**job.defaults, **defaults}
        key = key or job.idempotency_key
        not_before = not_before or job.not_before
        allow_duplicates = allow_duplicates or job.allow_duplicates
    elif args.csv:
        with Path(args.csv).open(encoding="utf-8-sig") as fh:
            header = fh.readline()
        if "phone" not in [h.strip() for h in header.split(",")]:
            print(f"error: {args.csv}: the header row must have a 'phone' column", file=sys.stderr)
            return EXIT_INVALID
        recipients = csv_rows(Path(args.csv), progress=sys.stderr.isatty())
    elif args.to:
        recipients = [{"phone": p} for p in args.to]
    else:
        print("error: give recipients with --to, --csv or --job", file=sys.stderr)
        return EXIT_INVALID
    if not account:
        print("error: --account is required", file=sys.stderr)
        return EXIT_INVALID
    if args.dry_run:
        try:
            count = validate_stream(
                account, recipients, defaults=defaults, allow_duplicates=allow_duplicates
            )
        except ValidationFailed as exc:
            return _report_invalid(exc, csv_mode=bool(args.csv))
        if args.json:
            _print_json({"valid": True, "total": count})
        else:
            print(f"{count} recipients valid; nothing was sent (dry run)")
        return 0
    try:
        result = enqueue_stream(
            account,
            recipients,
            defaults=defaults,
            idempotency_key=key,
            not_before=not_before,
            allow_duplicates=allow_duplicates,
        )
    except ValidationFailed as exc:
        return _report_invalid(exc, csv_mode=bool(args.csv))
    except IdempotencyConflict as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INVALID
    if args.json:
        _print_json({"job_id": result.job_id, "total": result.total, "created": result.created})
    else:
        print(result.job_id)
    return 0


def _progress_line(st: JobStatus) -> str:
    finished = sum(n for s, n in st.counts.items() if s not in ("queued", "sending", "deferred"))
    pct = 100.0 * finished / st.total if st.total else 100.0
    width = 30
    filled = int(width * pct / 100)
    counts = " ".join(f"{k}={v}" for k, v in st.counts.items())
    return f"[{'#' * filled}{'.' * (width - filled)}] {pct:5.1f}% {counts}"


def cmd_status(args: argparse.Namespace) -> int:
    deadline = time.monotonic() + args.timeout
    tty = sys.stdout.isatty() and not args.json
    while True:
        try:
            st = job_status(args.job_id)
        except JobNotFound as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        if not args.wait or st.done:
            break
        if time.monotonic() > deadline:
            print(f"error: job not done after {args.timeout:.0f}s", file=sys.stderr)
            return 1
        if tty:
            print("\r" + _progress_line(st), end="", flush=True)
        time.sleep(0.5)
    if tty and args.wait:
        print("\r" + _progress_line(st))
    if args.json:
        _print_json(st.as_dict())
    else:
        print(f"job {st.job_id} ({st.channel} via {st.account}): {st.accepted}/{st.total} accepted")
        for status, n in st.counts.items():
            print(f"  {status:<12} {n:>9}")
        print("  done" if st.done else f"  in progress (next due {st.next_due_at or 'now'})")
    return 0


def cmd_lookup(args: argparse.Namespace) -> int:
    rows = lookup(phone=args.phone, provider_id=args.provider_id, limit=args.limit)
    if args.json:
        _print_json([r.as_dict() for r in rows])
        return 0
    if not rows:
        print("no messages found")
    for r in rows:
        err = f" {r.error_code}: {r.error_text}" if r.error_code else ""
        print(f"{r.created_at} {r.phone} {r.status:<10} job={r.job_id} id={r.id}{err}")
    return 0


def cmd_cancel(args: argparse.Namespace) -> int:
    from teledispatch.producer.cancel import cancel_job

    try:
        result = cancel_job(args.job_id)
    except JobNotFound as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.json:
        _print_json({"job_id": result.job_id, "cancelled": result.cancelled})
    else:
        print(f"cancelled {result.cancelled} messages not yet claimed; the rest will finish")
    return 0


def _celery(argv: Sequence[str]) -> int:
    os.execvp(
        sys.executable, [sys.executable, "-m", "celery", "-A", "teledispatch.worker.tasks", *argv]
    )


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


def cmd_simulate(rest: list[str]) -> int:
    from teledispatch.simulator.server import main as simulate

    return int(simulate(rest))


def cmd_demo(args: argparse.Namespace) -> int:
    from teledispatch.dev.demo import run_demo

    return run_demo(recipients=args.recipients, singles=args.singles, timeout=args.timeout)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="teledispatch",
        description="Enqueue send jobs, run workers and the simulator, look up outcomes.",
    )
    sub = p.add_subparsers(dest="verb", required=True)

    s = sub.add_parser("send", help="validate and enqueue a job")
    s.add_argument("--account", help="account name from the config file")
    s.add_argument("--to", action="append", metavar="PHONE", help="a recipient (repeatable)")
    s.add_argument("--csv", metavar="FILE", help="recipients from a CSV with a 'phone' column")
    s.add_argument("--job", metavar="FILE", help="a whole job as JSON (the SendJob model)")
    s.add_argument("--content", help="message text for every recipient (nxcloud.sms)")
    s.add_argument("--template-id", help="USpeedo TemplateId for every recipient")
    s.add_argument("--sender-id", help="USpeedo SenderId for every recipient")
    s.add_argument(
        "--param", action="append", metavar="VALUE", help="a USpeedo template parameter (repeat)"
    )
    s.add_argument("--task-open-id", help="Volcengine VMS task for every recipient")
    s.add_argument(
        "--default",
        action="append",
        type=_parse_default,
        metavar="FIELD=VALUE",
        help="a job-wide field for every recipient (repeatable)",
    )
    s.add_argument("--idempotency-key")
    s.add_argument("--not-before", metavar="ISO-TIME")
    s.add_argument("--allow-duplicates", action="store_true")
    s.add_argument(
        "--dry-run", action="store_true", help="validate every recipient and send nothing"
    )
    s.add_argument("--json", action="store_true", help='print {"job_id": ...}')
    s.set_defaults(func=cmd_send)

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

    b = sub.add_parser("beat", help="run the sweep schedule (exactly one per deployment)")
    b.add_argument("--schedule", default=".teledispatch-beat-schedule")
    b.add_argument("--loglevel", default="INFO")
    b.set_defaults(func=cmd_beat)

    sub.add_parser("simulate", help="run the provider simulator (see simulate --help)")

    d = sub.add_parser("demo", help="run the whole pipeline on embedded defaults")
    d.add_argument("--recipients", type=int, default=20_000)
    d.add_argument("--singles", type=int, default=50)
    d.add_argument("--timeout", type=float, default=100.0)
    d.set_defaults(func=cmd_demo)

    from teledispatch.cli import ops as cli_ops

    cli_ops.register(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "simulate":
        return cmd_simulate(argv[1:])
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INVALID


if __name__ == "__main__":
    sys.exit(main())


__all__ = ["main", "settings"]
