"""Any pushed or polled receipt: receipts, nothing, or a DispatchError (door 2).

A bounded atheris run in a subprocess with a fixed seed over tests/fuzz/seeds/receipts/; see
tests/fuzz/__init__.py for running it long by hand.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("atheris", reason="fuzzing needs the 'atheris' package (Linux wheels)")

from tests.fuzz.runner import assert_survives


def test_receipts_survive_a_bounded_fuzz_run(tmp_path: Path) -> None:
    assert_survives("receipts", tmp_path)
