"""A config table the atheris harness (tests/fuzz/config_tables.py) found crashing
``parse_config``: `name = "…"` inside ``[accounts.x]`` reached ``AccountConfig(name=…,
**table)`` twice and raised TypeError ("got multiple values for keyword argument 'name'"),
a traceback at start-up instead of a ConfigError naming the key."""

from __future__ import annotations

import pytest

from teledispatch.config import ConfigError, parse_config
from tests.fuzz import config_tables

#: As atheris wrote it (``python -m tests.fuzz.config_tables <file>`` replays one).
FOUND = b"\x01\xa3\x01\x01"


def test_a_name_key_in_an_account_table_is_a_config_error() -> None:
    table = {"name": "other", "channel": "nxcloud.sms", "base_url": "http://127.0.0.1:9"}
    with pytest.raises(ConfigError, match=r"f\.toml: accounts\.x\.name: not a setting"):
        parse_config({"accounts": {"x": table}}, "f.toml")


def test_the_input_atheris_found_passes_the_door() -> None:
    config_tables.check(FOUND)
