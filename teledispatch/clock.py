"""The wall clock quiet-hours decisions read, which an integration test may move.

Production reads the system clock. ``TELEDISPATCH_TEST_CLOCK_FILE`` (tests only) names a file
holding seconds to add to it: the worker's clock (``worker/context.py``) and the producer's
quiet-hours decision then read the moved time, so a test can stand at 23:30 UTC and then at
05:00 without waiting for either. The file is re-read on every call (a test moves the clock
while the worker runs); a missing or empty file means no offset.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

#: Names the offset file; unset in production.
CLOCK_FILE_ENV = "TELEDISPATCH_TEST_CLOCK_FILE"


def offset() -> float:
    """Seconds the test clock is ahead of the system clock (0 without a test clock)."""
    path = os.environ.get(CLOCK_FILE_ENV)
    if not path:
        return 0.0
    try:
        text = Path(path).read_text(encoding="ascii").strip()
    except OSError:
        return 0.0
    return float(text) if text else 0.0


def now() -> float:
    """Epoch seconds: the system clock, moved by a test clock when one is set."""
    return time.time() + offset()


def is_moved() -> bool:
    """Whether a test clock is configured (the worker then reads :func:`now`)."""
    return bool(os.environ.get(CLOCK_FILE_ENV))
