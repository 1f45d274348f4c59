"""``teledispatch send``: flags, a CSV or a JSON job file become one validated, enqueued job."""

from __future__ import annotations

import argparse
import codecs
import csv
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from teledispatch.cli.output import EXIT_INVALID, print_json
from teledispatch.cli.send_args import add_arguments
from teledispatch.csv_input import (
    DEFAULT_ENCODING,
    CsvRefused,
    csv_recipients,
    header_problem,
)

if TYPE_CHECKING:  # loaded by the verb, not by every `teledispatch` start (see enqueue_stream)
    from teledispatch.producer.dry_run import DryRun
    from teledispatch.producer.jobs import SendJob
    from teledispatch.producer.submit import Enqueued
    from teledispatch.validation import ValidationFailed

#: The longest value an error line quotes.
MAX_QUOTED = 60

#: ``--flag`` → the job-wide field it sets for every recipient.
FIELD_FLAGS = ("content", "template_id", "sender_id", "task_open_id")


class _Refused(Exception):
    """The command line cannot make a job; the message is printed as ``error: …``."""


@dataclass
class _Request:
    account: str | None
    recipients: Any
    route: str | None = None
    defaults: dict[str, Any] = field(default_factory=dict)
    idempotency_key: str | None = None
    not_before: datetime | None = None
    allow_duplicates: bool = False
    priority: str | None = None
    expires_at: datetime | None = None
    ttl_s: float | None = None
    callback_url: str | None = None
    weight: float | None = None
    quiet_hours: str | None = None


def _expires_at(text: str | None) -> datetime | None:
    """``--expires-at``: an ISO time with its timezone (a naive one is ambiguous: refused)."""
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise _Refused(f"--expires-at {text[:40]!r}: not an ISO time") from None
    if value.utcoffset() is None:
        raise _Refused(
            f"--expires-at {text[:40]!r}: give a timezone (e.g. 2026-12-01T10:00:00+00:00)"
        )
    return value


def csv_rows(
    path: Path, progress: bool = False, encoding: str = DEFAULT_ENCODING
) -> Iterator[dict[str, Any]]:
    """Rows of the file as recipients (:func:`csv_recipients`). With ``progress`` (a terminal),
    a line on stderr shows how far into the file we are, by bytes read, so a million-row file
    shows movement without being counted first."""
    size = max(path.stat().st_size, 1)
    with path.open(newline="", encoding=encoding) as fh:

        def report(n: int) -> None:
            pct = 100.0 * os.lseek(fh.fileno(), 0, os.SEEK_CUR) / size
            print(f"\r  reading {path.name}: {n:,} rows ({pct:4.1f}%)", end="", file=sys.stderr)

        yield from csv_recipients(fh, str(path), on_rows=report if progress else None)
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


def _quote(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= MAX_QUOTED else text[: MAX_QUOTED - 3] + "..."


def _read_job(name: str) -> SendJob:
    from pydantic import ValidationError

    from teledispatch.producer.jobs import SendJob

    text = _read_text(name, DEFAULT_ENCODING)
    try:
        return SendJob.model_validate_json(text)
    except ValidationError as exc:
        problems = []
        for err in exc.errors()[:5]:
            where = ".".join(str(p) for p in err["loc"]) or "job"
            problems.append(f"{where}: {_clip(err['msg'])}")
        more = exc.error_count() - len(problems)
        tail = f"; and {more} more" if more > 0 else ""
        raise _Refused(f"{name}: not a valid job: {'; '.join(problems)}{tail}") from None


def _clip(text: str, limit: int = 2 * MAX_QUOTED) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _read_text(name: str, encoding: str) -> str:
    try:
        return Path(name).read_text(encoding=encoding)
    except OSError as exc:
        raise _Refused(f"{name}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise _Refused(_not_encoded(name, encoding, exc)) from None


def _not_encoded(name: str, encoding: str, exc: UnicodeDecodeError) -> str:
    return (
        f"{name}: not {encoding} text (byte {exc.object[exc.start]:#04x} at offset "
        f"{exc.start}); give the file's encoding with --encoding (e.g. --encoding gbk)"
    )


def _from_job_file(args: argparse.Namespace, flags: _Request) -> _Request:
    """The job file fills in whatever the flags left open; flags win."""
    job = _read_job(args.job)
    account = flags.account or (None if flags.route else job.account)
    if account is not None:
        _check_channel(args.job, job, account)
    return _Request(
        account=account,
        route=flags.route or (None if flags.account else job.route),
        recipients=job.recipients,
        defaults={**job.defaults, **flags.defaults},
        idempotency_key=flags.idempotency_key or job.idempotency_key,
        not_before=flags.not_before or job.not_before,
        allow_duplicates=flags.allow_duplicates or job.allow_duplicates,
        priority=flags.priority or job.priority,
        expires_at=flags.expires_at or (job.expires_at if flags.ttl_s is None else None),
        ttl_s=flags.ttl_s
        if flags.ttl_s is not None
        else (job.ttl_s if flags.expires_at is None else None),
        callback_url=flags.callback_url or job.callback_url,
        weight=flags.weight if flags.weight is not None else job.weight,
        quiet_hours=flags.quiet_hours or job.quiet_hours,
    )


def _check_channel(name: str, job: SendJob, account: str) -> None:
    """A job file's ``channel`` (optional) must be its account's, as over the API."""
    from teledispatch.config import settings

    found = settings().accounts.get(account) if job.channel is not None else None
    rule = None if found is None else job.channel_rule(found.channel)
    if rule is not None:
        raise _Refused(f"{name}: channel {_quote(job.channel)} {rule}")


def _csv_recipients(name: str, encoding: str) -> Iterator[dict[str, Any]]:
    try:
        codecs.lookup(encoding)
    except LookupError:
        raise _Refused(f"--encoding {_quote(encoding)} is not a known text encoding") from None
    try:
        with Path(name).open(newline="", encoding=encoding) as fh:
            header = next(csv.reader(fh), [])
    except OSError as exc:
        raise _Refused(f"{name}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise _Refused(_not_encoded(name, encoding, exc)) from None
    problem = header_problem(header)
    if problem is not None:
        raise _Refused(f"{name}: {problem}")
    return csv_rows(Path(name), progress=sys.stderr.isatty(), encoding=encoding)


def _not_before(text: str | None) -> datetime | None:
    """An aware time: a naive one would be read in some zone the sender did not choose."""
    if not text:
        return None
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise _Refused(
            f"--not-before {_quote(text)} is not an ISO 8601 time "
            "(e.g. 2026-05-01T09:00+08:00 or 2026-05-01T01:00Z)"
        ) from None
    if when.tzinfo is None or when.utcoffset() is None:
        raise _Refused(
            f"--not-before {_quote(text)} has no time zone; add one (e.g. +08:00, or Z for UTC)"
        )
    return when


def _request(args: argparse.Namespace) -> _Request:
    flags = _Request(
        account=args.account,
        route=args.route,
        recipients=None,
        defaults=_flag_defaults(args),
        idempotency_key=args.idempotency_key,
        not_before=_not_before(args.not_before),
        allow_duplicates=args.allow_duplicates,
        priority=args.priority,
        expires_at=_expires_at(args.expires_at),
        ttl_s=args.ttl,
        callback_url=args.callback_url,
        weight=args.weight,
        quiet_hours=args.quiet_hours,
    )
    if args.job:
        req = _from_job_file(args, flags)
    elif args.csv:
        flags.recipients = _csv_recipients(args.csv, args.encoding)
        req = flags
    elif args.to:
        flags.recipients = [{"phone": p} for p in args.to]
        req = flags
    else:
        raise _Refused("give recipients with --to, --csv or --job")
    if bool(req.account) == bool(req.route):
        raise _Refused("give --account or --route (exactly one)")
    return req


def enqueue_stream(account: str, recipients: Any, **kw: Any) -> Enqueued:
    """The producer's ``enqueue_stream``, imported when a job is sent: the producer brings
    SQLAlchemy, Redis and Celery, which ``--help`` and the other verbs do without."""
    from teledispatch.producer.submit import enqueue_stream as run

    return run(account, recipients, **kw)


def dry_run(account: str, recipients: Any, **kw: Any) -> DryRun:
    """The producer's dry run, imported when one is asked for (as :func:`enqueue_stream`):
    without SQLAlchemy and the models when ``quick_dry_run`` can answer as it would."""
    from teledispatch.producer import quick_dry_run

    report = quick_dry_run.dry_run(account, recipients, **kw)
    if report is not None:
        return report
    from teledispatch.producer.dry_run import dry_run as run

    return run(account, recipients, **kw)


def _webhooks(req: _Request) -> Any:
    """The ``[webhooks]`` settings the job's callback URL is checked against: the models'
    unless the file passes the quick check (an account's job). Read first, as before, so a
    broken config file is the error reported whatever else is wrong."""
    if req.route is None:
        from teledispatch.producer import quick_dry_run

        quick = quick_dry_run.config()
        if quick is not None:
            return quick.webhooks
    from teledispatch.config import settings

    return settings().webhooks


def _report_invalid(exc: ValidationFailed, csv_mode: bool) -> int:
    noun = "problem" if exc.total == 1 else "problems"
    print(f"error: job rejected, nothing was enqueued ({exc.total} {noun}):", file=sys.stderr)
    for p in exc.problems:
        where = p.field
        if p.index is not None:
            where = f"row {p.index + 2}" if csv_mode else f"recipients[{p.index}]"
            where += f" {p.field}"
        print(f"  {where} = {_quote(p.value)}: {_clip(p.rule)}", file=sys.stderr)
    if exc.total > len(exc.problems):
        print(f"  … and {exc.total - len(exc.problems)} more", file=sys.stderr)
    return EXIT_INVALID


def _print_report(report: DryRun) -> None:
    via = f"route {report.route}" if report.route else f"{report.account} ({report.channel})"
    print(f"dry run for {via}; nothing was enqueued")
    print(f"  recipients   {report.recipients}")
    print(f"  invalid      {report.invalid} (duplicates {report.duplicates})")
    print(f"  suppressed   {report.suppressed}")
    if report.segments:
        print(f"  segments     {', '.join(f'{n} {e}' for e, n in report.segments.items())}")
    if report.cost is not None:
        unpriced = f" ({report.unpriced} unpriced)" if report.unpriced else ""
        print(f"  cost         {report.cost:.4f}{unpriced}")
    print(f"  backlog      {report.backlog} already queued")
    print(f"  eta          {report.eta or 'unknown (the account sets no rate limit)'}")


def _routed_job(req: _Request) -> Any:
    """The request as a routed ``SendJob`` (recipients read into memory)."""
    from teledispatch.producer.jobs import SendJob

    return SendJob(
        route=req.route,
        recipients=list(req.recipients),
        defaults=req.defaults,
        idempotency_key=req.idempotency_key,
        not_before=req.not_before,
        allow_duplicates=req.allow_duplicates,
        priority=req.priority,
        expires_at=req.expires_at,
        ttl_s=req.ttl_s,
        callback_url=req.callback_url,
        weight=req.weight,
        quiet_hours=req.quiet_hours,
    )


def _dry_run(req: _Request, as_json: bool, csv_mode: bool) -> int:
    """The report on stdout; refused rows as for a real send on stderr, and exit 2 if any."""
    from teledispatch.producer.callback import check_options
    from teledispatch.producer.lane import Lane
    from teledispatch.validation import ValidationFailed

    # The job-wide options are checked as a real send checks them, before any recipient.
    check_options(
        Lane(req.priority, req.expires_at, req.ttl_s, req.weight), req.callback_url, _webhooks(req)
    )
    if req.route is not None:
        from teledispatch.producer.dry_run import dry_run_route

        report = dry_run_route(
            req.route,
            req.recipients,
            defaults=req.defaults,
            allow_duplicates=req.allow_duplicates,
        )
    else:
        assert req.account is not None
        report = dry_run(
            req.account,
            req.recipients,
            defaults=req.defaults,
            not_before=req.not_before,
            allow_duplicates=req.allow_duplicates,
            priority=req.priority,
            quiet_hours=req.quiet_hours,
        )
    valid = report.problems_total == 0
    if as_json:
        print_json({"valid": valid, "total": report.recipients, **report.as_dict()})
    else:
        _print_report(report)
    if not valid:
        failed = ValidationFailed(report.problems, total=report.problems_total)
        return _report_invalid(failed, csv_mode)
    return 0


def _send(req: _Request, as_json: bool) -> int:
    """Enqueue the job and print its id; a reused idempotency key is an ``error:`` line."""
    from teledispatch.producer.submit import IdempotencyConflict

    try:
        _enqueue(req, as_json)
    except IdempotencyConflict as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INVALID
    return 0


def _enqueue(req: _Request, as_json: bool) -> None:
    if req.route is not None:
        from teledispatch.producer.submit import enqueue_job

        result = enqueue_job(_routed_job(req))
        _print_enqueued(result, as_json)
        return
    assert req.account is not None
    result = enqueue_stream(
        req.account,
        req.recipients,
        defaults=req.defaults,
        idempotency_key=req.idempotency_key,
        not_before=req.not_before,
        allow_duplicates=req.allow_duplicates,
        priority=req.priority,
        expires_at=req.expires_at,
        ttl_s=req.ttl_s,
        callback_url=req.callback_url,
        weight=req.weight,
        quiet_hours=req.quiet_hours,
    )
    _print_enqueued(result, as_json)


def _print_enqueued(result: Enqueued, as_json: bool) -> None:
    if as_json:
        print_json({"job_id": result.job_id, "total": result.total, "created": result.created})
    else:
        print(result.job_id)


def cmd_send(args: argparse.Namespace) -> int:
    # The producer (SQLAlchemy, the models) is imported by a real send only (``_send``).
    from teledispatch.validation import ValidationFailed

    try:
        req = _request(args)
        if args.dry_run:
            return _dry_run(req, args.json, csv_mode=bool(args.csv))
        return _send(req, args.json)
    except (_Refused, CsvRefused) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INVALID
    except UnicodeDecodeError as exc:  # a row past the header, while the job is read
        print(f"error: {_not_encoded(args.csv, args.encoding, exc)}", file=sys.stderr)
        return EXIT_INVALID
    except ValidationFailed as exc:
        return _report_invalid(exc, csv_mode=bool(args.csv))


def register(sub: Any) -> None:
    """Add ``send`` to ``sub`` (the CLI's subparsers)."""
    s = sub.add_parser("send", help="validate and enqueue a job")
    add_arguments(s)
    s.set_defaults(func=cmd_send)
