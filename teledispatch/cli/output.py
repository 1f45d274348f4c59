"""What every verb prints and exits with."""

from __future__ import annotations

import json
from typing import Any

#: Refused input (a bad job, a bad flag, a broken config): nothing was done.
EXIT_INVALID = 2


def print_json(value: Any) -> None:
    print(json.dumps(value, ensure_ascii=False, default=str))
