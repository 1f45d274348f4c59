"""Coverage-guided fuzzing (atheris) of the doors where untrusted input enters.

One module per door, each with a pure ``check(data: bytes) -> None`` that raises only when
the door breaks its promise: ``responses`` (provider answers → outcomes or a
``DispatchError``), ``receipts`` (pushed DRs and call records, polled USpeedo receipts),
``csv_rows`` (CSV bytes → rows or ``CsvRefused``), ``phones`` (any value → E.164 or a problem,
the fast path equal to ``phonenumbers``), ``config_tables`` (TOML-shaped tables → settings or
one ``ConfigError``). tests/component/fuzz/ runs each in a subprocess for a bounded, seeded
100,000 inputs or 10 s (skipped without atheris). To search for long, by hand (Linux,
``pip install atheris``)::

    PYTHONPATH=. python -m tests.fuzz.responses -max_total_time=600

Any libFuzzer flag works. Without a corpus folder the run reads the checked-in seeds
(``seeds/<door>/``, kept tiny) and grows a throw-away copy in the temp folder; a crash prints
the exception and writes the input under ``$TMPDIR/td-fuzz-crashes/<door>/``. Replay one
with ``python -m tests.fuzz.<door> <crash-file>``, and keep its bytes in a unit regression
test beside the fix (``tests/unit/**/test_*_fuzz_found.py``).
"""
