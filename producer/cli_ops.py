"""Operator verbs (flower, api, db): registered into the main CLI's parser."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any) -> None:
    """Add this module's verbs to ``sub`` (the CLI's subparsers)."""
    _ = sub, argparse
