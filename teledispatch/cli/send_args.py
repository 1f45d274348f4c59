"""The flags of ``teledispatch send`` (the verb itself is ``cli/send.py``)."""

from __future__ import annotations

import argparse
from typing import Any

from teledispatch.csv_input import DEFAULT_ENCODING


def _parse_default(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"{text!r} must be FIELD=VALUE")
    return key, value


def add_arguments(s: argparse.ArgumentParser) -> None:
    """Every flag of ``send`` on its subparser ``s``."""
    s.add_argument("--account", help="account name from the config file")
    s.add_argument(
        "--route", help="a route from the config file ([routes.NAME]) instead of an account"
    )
    s.add_argument("--to", action="append", metavar="PHONE", help="a recipient (repeatable)")
    s.add_argument("--csv", metavar="FILE", help="recipients from a CSV with a 'phone' column")
    s.add_argument("--job", metavar="FILE", help="a whole job as JSON (the SendJob model)")
    s.add_argument(
        "--encoding",
        default=DEFAULT_ENCODING,
        help=f"the CSV file's text encoding (default {DEFAULT_ENCODING}; e.g. gbk)",
    )
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
    s.add_argument(
        "--not-before",
        metavar="ISO-TIME",
        help="send no message before this time; give a zone: 2026-05-01T09:00+08:00",
    )
    s.add_argument("--allow-duplicates", action="store_true")
    s.add_argument(
        "--callback-url", metavar="URL", help="POST this job's status events here (webhooks)"
    )
    s.add_argument(
        "--priority",
        choices=("high", "normal", "low"),
        help="lane: high is served before normal before low (default: the account's)",
    )
    s.add_argument(
        "--weight",
        type=float,
        metavar="W",
        help="share of the account's rate beside other active jobs of its lane (default 1)",
    )
    s.add_argument(
        "--ttl",
        type=float,
        metavar="SECONDS",
        help="messages not sent this long after the job's start become expired",
    )
    s.add_argument(
        "--expires-at",
        metavar="ISO-TIME",
        help="messages not sent by then become expired (with a timezone)",
    )
    s.add_argument(
        "--quiet-hours",
        metavar="HH:MM-HH:MM",
        help="hold normal and low messages in these hours, local to each recipient's number "
        "(default: the account's quiet_hours)",
    )
    s.add_argument(
        "--dry-run",
        action="store_true",
        help="validate every recipient and report recipients, suppressed, segments, cost and ETA; "
        "enqueue nothing",
    )
    s.add_argument("--json", action="store_true", help='print {"job_id": ...}')
