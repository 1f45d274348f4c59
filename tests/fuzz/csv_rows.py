"""Door 3: CSV recipients. Any bytes, read as ``send --csv`` and ``POST /v1/jobs/csv`` read
them, give rows or a one-line :class:`CsvRefused`; a file that is not in the named encoding
gives ``UnicodeDecodeError``, which both callers turn into their own message. Nothing else.

Input layout: the encoding, then the file's bytes.
"""

from __future__ import annotations

import io

from teledispatch.csv_input import CsvRefused, csv_recipients
from tests.fuzz.reader import Reader

ENCODINGS = ("utf-8-sig", "utf-8", "gbk", "latin-1")


def check(data: bytes) -> None:
    r = Reader(data)
    encoding = r.pick(ENCODINGS)
    repeat = r.byte()
    raw = r.rest()
    if repeat > 250 and raw:
        # A cell longer than the csv module's field limit cannot be typed by a mutator
        # within -max_len, so a few inputs grow their last byte into one.
        raw += raw[-1:] * 140_000
    text = io.TextIOWrapper(io.BytesIO(raw), encoding, newline="")
    try:
        for row in csv_recipients(text, "fuzz.csv"):
            assert all(isinstance(k, str) and isinstance(v, str) for k, v in row.items())
            assert all("\x00" not in k + v for k, v in row.items())
    except CsvRefused as exc:
        assert "\n" not in str(exc)
    except UnicodeDecodeError:
        pass


if __name__ == "__main__":
    from tests.fuzz.runner import main

    main("csv_rows")
