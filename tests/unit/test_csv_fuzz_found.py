"""CSV the atheris harness (tests/fuzz/csv_rows.py) found crashing ``csv_recipients``: a
field over the csv module's limit (131072 characters; a quote left open swallows the rest
of the file into one field) raised ``_csv.Error``: a traceback from ``send --csv`` and a 500
from ``POST /v1/jobs/csv`` instead of a one-line refusal naming the row."""

from __future__ import annotations

import io

import pytest

from teledispatch.csv_input import CsvRefused, csv_recipients
from tests.fuzz import csv_rows

#: As atheris wrote it: a quote left open on row 4 (the harness grows the field past 128 KiB).
FOUND = bytes.fromhex(
    "00ff70686f6e652c636f6e74656e742c74656d706c614f6574706172616d730a2b3836313338303031333830"
    "302c68706c614f6574706172616d730a2b3836313338303031333830302c68656c6c6f2c0a223836"
)


def test_a_field_over_the_csv_limit_is_refused_with_its_row() -> None:
    text = 'phone,content\n+8613800138000,"never closed\n' + "x" * 140_000
    with pytest.raises(CsvRefused, match=r"^big\.csv: row 2 has a field over 131072 characters"):
        list(csv_recipients(io.StringIO(text, newline=""), "big.csv"))


def test_a_header_over_the_csv_limit_is_refused() -> None:
    with pytest.raises(CsvRefused, match=r"row 1 has a field over"):
        list(csv_recipients(io.StringIO("phone" + "x" * 140_000, newline=""), "big.csv"))


def test_rows_before_the_long_field_are_still_read() -> None:
    text = 'phone\n+8613800138000\n"' + "x" * 140_000
    rows = csv_recipients(io.StringIO(text, newline=""), "big.csv")
    assert next(rows) == {"phone": "+8613800138000"}
    with pytest.raises(CsvRefused, match="row 3"):
        next(rows)


def test_the_input_atheris_found_passes_the_door() -> None:
    csv_rows.check(FOUND)
