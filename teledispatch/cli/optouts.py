"""``teledispatch optout add | remove | import | list``: the suppression lists.

Without ``--account`` a verb works on the global list, which every account obeys. A bad
number refuses the whole command (exit 2, every problem named), and nothing is written.
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from teledispatch.cli.output import EXIT_INVALID, print_json

#: Numbers read from an import file per call (one transaction each).
IMPORT_CHUNK = 50_000


def _list_name(account: str | None) -> str:
    return f"account {account}" if account else "the global list"


def _refused(exc: Exception) -> int:
    from teledispatch.validation import ValidationFailed

    if isinstance(exc, ValidationFailed):
        problems = "; ".join(str(p) for p in exc.problems[:10])
        more = exc.total - min(len(exc.problems), 10)
        tail = f"; and {more} more" if more > 0 else ""
        print(f"error: nothing was changed: {problems}{tail}", file=sys.stderr)
    else:
        print(f"error: {exc}", file=sys.stderr)
    return EXIT_INVALID


def cmd_add(args: argparse.Namespace) -> int:
    from teledispatch.producer import optouts
    from teledispatch.validation import ValidationFailed

    try:
        n = optouts.add(args.phones, args.account)
    except ValidationFailed as exc:
        return _refused(exc)
    _done(args, "added", n, len(args.phones))
    return 0


def cmd_remove(args: argparse.Namespace) -> int:
    from teledispatch.producer import optouts
    from teledispatch.validation import ValidationFailed

    try:
        n = optouts.remove(args.phones, args.account)
    except ValidationFailed as exc:
        return _refused(exc)
    _done(args, "removed", n, len(args.phones))
    return 0


def _done(args: argparse.Namespace, verb: str, n: int, given: int) -> None:
    if args.json:
        print_json({verb: n, "given": given, "list": args.account or "global"})
    else:
        print(f"{n} of {given} {verb} ({_list_name(args.account)})")


def _file_numbers(path: Path) -> Iterator[tuple[int, str]]:
    """``(line number, number)`` of a file of one number a line, or a CSV whose header has a
    ``phone`` column; blank lines and ``#`` comments are skipped."""
    with path.open(newline="", encoding="utf-8-sig") as fh:
        first = fh.readline()
        header = [h.strip() for h in next(csv.reader([first]), [])]
        if "phone" in header:
            column = header.index("phone")
            for n, row in enumerate(csv.reader(fh), start=2):
                if len(row) > column and row[column].strip():
                    yield n, row[column].strip()
            return
        lines = [first, *fh]
        for n, line in enumerate(lines, start=1):
            text = line.strip()
            if text and not text.startswith("#"):
                yield n, text


def cmd_import(args: argparse.Namespace) -> int:
    """Checks every number of the file first, then adds them in chunks: a bad line refuses
    the whole file (naming its line), so an import is all or nothing up to a database error."""
    from teledispatch.producer import optouts
    from teledispatch.validation import ValidationFailed

    path = Path(args.file)
    try:
        numbered = list(_file_numbers(path))
    except (OSError, UnicodeDecodeError) as exc:
        return _refused(ValueError(f"{path}: {exc}"))
    bad = [f"line {n} {text[:24]!r}" for n, text in numbered if _invalid(text)]
    if bad:
        more = f"; and {len(bad) - 10} more" if len(bad) > 10 else ""
        print(
            f"error: {path}: nothing was imported; not phone numbers with a country code "
            f"(E.164): {', '.join(bad[:10])}{more}",
            file=sys.stderr,
        )
        return EXIT_INVALID
    if not numbered:
        return _refused(ValueError(f"{path}: no phone numbers in the file"))
    added = 0
    try:
        for start in range(0, len(numbered), IMPORT_CHUNK):
            chunk = [text for _, text in numbered[start : start + IMPORT_CHUNK]]
            added += optouts.add(chunk, args.account)
    except ValidationFailed as exc:
        return _refused(exc)
    _done(args, "added", added, len(numbered))
    return 0


def _invalid(text: str) -> bool:
    from teledispatch.validation import normalize_phone

    return normalize_phone(text) is None


def cmd_list(args: argparse.Namespace) -> int:
    from teledispatch.producer import optouts

    after = ""
    shown = 0
    while shown < args.limit:
        page = optouts.entries(args.account, after=after, limit=min(1000, args.limit - shown))
        if not page:
            break
        for entry in page:
            if args.json:
                print_json({"phone": entry.phone, "created_at": entry.created_at})
            else:
                print(entry.phone)
        shown += len(page)
        after = page[-1].phone
    return 0


def register(sub: Any) -> None:
    o = sub.add_parser("optout", help="suppression lists: opted-out numbers are never sent")
    o_sub = o.add_subparsers(dest="optout_verb", required=True)

    def verb(name: str, help_text: str) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = o_sub.add_parser(name, help=help_text)
        p.add_argument(
            "--account", metavar="NAME", help="that account's list (default: the global list)"
        )
        p.add_argument("--json", action="store_true")
        return p

    add = verb("add", "opt numbers out")
    add.add_argument("phones", nargs="+", metavar="PHONE")
    add.set_defaults(func=cmd_add)
    rm = verb("remove", "take numbers off the list")
    rm.add_argument("phones", nargs="+", metavar="PHONE")
    rm.set_defaults(func=cmd_remove)
    imp = verb("import", "add every number of a file (one a line, or a CSV with a phone column)")
    imp.add_argument("file", metavar="FILE")
    imp.set_defaults(func=cmd_import)
    ls = verb("list", "the list's numbers, in order")
    ls.add_argument("--limit", type=int, default=1_000_000, help="at most this many")
    ls.set_defaults(func=cmd_list)
