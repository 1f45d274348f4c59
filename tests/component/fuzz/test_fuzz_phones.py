"""Any phone value: E.164 or a problem, fast path == phonenumbers (door 4).

A bounded atheris run in a subprocess with a fixed seed over tests/fuzz/seeds/phones/; see
tests/fuzz/__init__.py for running it long by hand.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("atheris", reason="fuzzing needs the 'atheris' package (Linux wheels)")

from tests.fuzz.runner import assert_survives


def test_phones_survive_a_bounded_fuzz_run(tmp_path: Path) -> None:
    assert_survives("phones", tmp_path)
