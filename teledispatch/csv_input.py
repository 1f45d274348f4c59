"""Recipients from CSV text: the one reader of ``teledispatch send --csv`` and
``POST /v1/jobs/csv``, so a file gets the same answers from both.

The header row names the fields (it must have ``phone``); each later row is a recipient whose
empty cells are left out, so the job's defaults apply to them. Rows are numbered as a
spreadsheet shows them: the header is row 1, so recipient ``i`` is row ``i + 2``.
"""

from __future__ import annotations

import csv
import itertools
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TextIO, TypeVar

from teledispatch.errors import Error

#: CSV files as Excel saves them (a BOM) and as most tools write them.
DEFAULT_ENCODING = "utf-8-sig"
#: Where ``csv.DictReader`` puts the cells past the header's last column.
_EXTRA = "\x00extra"
#: The header is row 1: recipient ``index`` (0-based) is on this row plus the index.
FIRST_ROW = 2

T = TypeVar("T")


class CsvRefused(Error, ValueError):
    """The text cannot be read as recipients at all (no ``phone`` column, a row with more
    cells than the header, a NUL character); nothing of the job is enqueued."""

    def __init__(self, source: str, row: int | None, rule: str) -> None:
        self.source, self.row, self.rule = source, row, rule
        where = f"{source}: row {row} " if row is not None else f"{source}: "
        super().__init__(where + rule)


def header_problem(header: Sequence[str] | None) -> str | None:
    """Why ``header`` cannot start a file of recipients, or None."""
    if "phone" not in [h.strip() for h in header or ()]:
        return "the header row must have a 'phone' column"
    return None


def csv_recipients(
    fh: TextIO, source: str, *, on_rows: Callable[[int], None] | None = None
) -> Iterator[dict[str, Any]]:
    """The recipients of the CSV text ``fh`` (opened with ``newline=""``), read lazily.

    A row with more cells than the header is refused: the extra cell is data the sender
    meant to send somewhere. A NUL character is refused: no database can store one in text.
    ``on_rows(n)`` is called every 20,000 rows (a progress line)."""
    reader = csv.DictReader(fh, restkey=_EXTRA)
    problem = header_problem(_read(lambda: reader.fieldnames, source, 1))
    if problem is not None:
        raise CsvRefused(source, None, problem)
    rows = iter(reader)
    for n in itertools.count(FIRST_ROW):
        row = _read(lambda: next(rows, None), source, n)
        if row is None:
            return
        if _EXTRA in row:
            raise CsvRefused(
                source,
                n,
                f"has {len(row[_EXTRA])} more cell(s) than the header; "
                "quote a value that holds a comma",
            )
        cells = {k: v for k, v in row.items() if k and v not in (None, "")}
        if any("\x00" in k or "\x00" in v for k, v in cells.items()):
            raise CsvRefused(source, n, "holds a NUL character")
        if on_rows is not None and (n - 1) % 20_000 == 0:
            on_rows(n - 1)
        yield cells


def _read(step: Callable[[], T], source: str, row: int) -> T:
    """``step()`` (the csv module reading one record), its ``csv.Error`` a refusal of the row.

    With ``newline=""`` and the default dialect the one error left is a field over the csv
    module's limit, nearly always a quote left open that swallowed the rest of the file.
    """
    try:
        return step()
    except csv.Error:
        limit = csv.field_size_limit()
        raise CsvRefused(
            source, row, f"has a field over {limit} characters (is a quote left open?)"
        ) from None
