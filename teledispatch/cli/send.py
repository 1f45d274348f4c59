"""``teledispatch send``: flags, a CSV or a JSON job file become one validated, enqueued job."""

from __future__ import annotations

import argparse
import csv
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from teledispatch.cli.output import EXIT_INVALID, print_json
from teledispatch.producer.jobs import SendJob
from teledispatch.producer.submit import IdempotencyConflict, enqueue_stream, validate_stream
from teledispatch.validation import ValidationFailed

#: ``--flag`` → the job-wide field it sets for every recipient.
FIELD_FLAGS = ("content", "template_id", "sender_id", "task_open_id")


class _Refused(Exception):
    """The command line cannot make a job; the message is printed as ``error: …``."""


@dataclass
class _Request:
    account: str | None
    recipients: Any
    defaults: dict[str, Any] = field(default_factory=dict)
    idempotency_key: str | None = None
    not_before: datetime | None = None
    allow_duplicates: bool = False
    callback_url: str | None = None


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


def _flag_defaults(args: argparse.Namespace) -> dict[str, Any]:
    defaults: dict[str, Any] = dict(args.default or [])
    for name in FIELD_FLAGS:
        if getattr(args, name) is not None:
            defaults[name] = getattr(args, name)
    if args.param is not None:
        defaults["template_params"] = list(args.param)
    return defaults


def _from_job_file(args: argparse.Namespace, flags: _Request) -> _Request:
    """The job file fills in whatever the flags left open; flags win."""
    job = SendJob.model_validate_json(Path(args.job).read_text(encoding="utf-8"))
    return _Request(
        account=flags.account or job.account,
        recipients=job.recipients,
        defaults={**job.defaults, **flags.defaults},
        idempotency_key=flags.idempotency_key or job.idempotency_key,
        not_before=flags.not_before or job.not_before,
        allow_duplicates=flags.allow_duplicates or job.allow_duplicates,
        callback_url=flags.callback_url or job.callback_url,
    )


def _csv_recipients(name: str) -> Iterator[dict[str, Any]]:
    with Path(name).open(encoding="utf-8-sig") as fh:
        header = fh.readline()
    if "phone" not in [h.strip() for h in header.split(",")]:
        raise _Refused(f"{name}: the header row must have a 'phone' column")
    return csv_rows(Path(name), progress=sys.stderr.isatty())


def _request(args: argparse.Namespace) -> _Request:
    flags = _Request(
        account=args.account,
        recipients=None,
        defaults=_flag_defaults(args),
        idempotency_key=args.idempotency_key,
        not_before=datetime.fromisoformat(args.not_before) if args.not_before else None,
        allow_duplicates=args.allow_duplicates,
        callback_url=args.callback_url,
    )
    if args.job:
        req = _from_job_file(args, flags)
    elif args.csv:
        flags.recipients = _csv_recipients(args.csv)
        req = flags
    elif args.to:
        flags.recipients = [{"phone": p} for p in args.to]
        req = flags
    else:
        raise _Refused("give recipients with --to, --csv or --job")
    if not req.account:
        raise _Refused("--account is required")
    return req


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


def _dry_run(req: _Request, as_json: bool) -> None:
    assert req.account is not None
    count = validate_stream(
        req.account, req.recipients, defaults=req.defaults, allow_duplicates=req.allow_duplicates
    )
    if as_json:
        print_json({"valid": True, "total": count})
    else:
        print(f"{count} recipients valid; nothing was sent (dry run)")


def _enqueue(req: _Request, as_json: bool) -> None:
    assert req.account is not None
    result = enqueue_stream(
        req.account,
        req.recipients,
        defaults=req.defaults,
        idempotency_key=req.idempotency_key,
        not_before=req.not_before,
        allow_duplicates=req.allow_duplicates,
        callback_url=req.callback_url,
    )
    if as_json:
        print_json({"job_id": result.job_id, "total": result.total, "created": result.created})
    else:
        print(result.job_id)


def cmd_send(args: argparse.Namespace) -> int:
    try:
        req = _request(args)
        (_dry_run if args.dry_run else _enqueue)(req, args.json)
    except _Refused as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INVALID
    except ValidationFailed as exc:
        return _report_invalid(exc, csv_mode=bool(args.csv))
    except IdempotencyConflict as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INVALID
    return 0


def register(sub: Any) -> None:
    """Add ``send`` to ``sub`` (the CLI's subparsers)."""
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
        "--callback-url", metavar="URL", help="POST this job's status events here (webhooks)"
    )
    s.add_argument(
        "--dry-run", action="store_true", help="validate every recipient and send nothing"
    )
    s.add_argument("--json", action="store_true", help='print {"job_id": ...}')
    s.set_defaults(func=cmd_send)
