"""Every ``docs/providers.md#<anchor>`` cited in the repository resolves to a heading, and no code
cites a file outside the repository."""

from __future__ import annotations

import re
from pathlib import Path

from tests.meta.test_registry import DOC, _anchors

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ("teledispatch", "producer", "worker", "simulator", "tests", "bench")
CITATION = re.compile(r"docs/providers\.md#([\w\-]+)")


def _files() -> list[Path]:
    files: list[Path] = []
    for top in SOURCES:
        base = ROOT / top
        # producer/worker/simulator are also reachable through teledispatch/ symlinks.
        if base.is_symlink():
            continue
        files += [p for p in base.rglob("*.py") if "__pycache__" not in p.parts]
    return files


def test_every_cited_anchor_is_a_heading() -> None:
    anchors = _anchors(DOC.read_text("utf-8"))
    cited = {
        (str(path.relative_to(ROOT)), anchor)
        for path in _files()
        for anchor in CITATION.findall(path.read_text("utf-8"))
    }
    assert cited, "no citations found: the pattern or the paths are wrong"
    missing = sorted((where, a) for where, a in cited if a not in anchors)
    assert not missing, missing


#: The provider notes that live outside the repository; spelled in two parts so that this
#: file does not cite them itself.
OUTSIDE_NOTES = "PROVIDERS" + ".md"


def test_no_code_cites_the_outside_providers_notes() -> None:
    offenders = [
        str(p.relative_to(ROOT)) for p in _files() if OUTSIDE_NOTES in p.read_text("utf-8")
    ]
    assert not offenders, offenders
