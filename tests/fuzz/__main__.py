"""``python -m tests.fuzz <door> [libFuzzer flags]``: fuzz one door with coverage of
``teledispatch`` alone.

The door is imported here, inside atheris' import hook, so only the project's own modules
are instrumented as they load: instrumenting everything already loaded
(``atheris.instrument_all``) takes half a minute (pydantic, phonenumbers, the stdlib) and
would eat the CI budget. The hook stays on for the whole run because the registry imports
adapters on first use.
"""

from __future__ import annotations

import importlib
import sys

from tests.fuzz.runner import DOORS, libfuzzer_args


def _main(argv: list[str]) -> None:
    if not argv or argv[0] not in DOORS:
        sys.exit(f"usage: python -m tests.fuzz {{{','.join(DOORS)}}} [libFuzzer flags]")
    try:
        import atheris
    except ImportError:
        sys.exit("fuzzing needs the 'atheris' package: pip install atheris (Linux)")
    door, flags = argv[0], argv[1:]
    # The door and its reader too: which shape of input was generated is coverage as well.
    with atheris.instrument_imports(include=["teledispatch", "tests.fuzz"]):
        check = importlib.import_module(f"tests.fuzz.{door}").check
        atheris.Setup([sys.argv[0], *libfuzzer_args(door, flags)], check)
        atheris.Fuzz()  # never returns: libFuzzer exits the process


if __name__ == "__main__":
    _main(sys.argv[1:])
