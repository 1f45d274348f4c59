"""Door 5: the config file. Any table ``tomllib`` could decode gives settings or one
:class:`ConfigError` naming the problems: never a traceback from a typo in teledispatch.toml.

The document is generated (:func:`tests.fuzz.reader.toml_value`), mostly shaped like the real
file: ``[accounts.NAME]`` tables with the real keys, ``[webhooks]``, ``[routes]``, ``[api]``.
"""

from __future__ import annotations

from typing import Any

from teledispatch.config import (
    AccountConfig,
    ConfigError,
    parse_config,
    parse_route_tables,
    parse_webhooks,
)
from teledispatch.config import WebhookSettings as _Webhooks
from teledispatch.config_file import api_limits as _api_limits
from teledispatch.config_file import max_body_bytes as _max_body_bytes
from teledispatch.config_quick import file_passes
from tests.fuzz.reader import Reader, toml_value

ACCOUNT_KEYS = (*AccountConfig.model_fields, "recipient_caps", "prices")
#: Keys of [webhooks], [api] and [routes.NAME] tables, mixed: a key in the wrong table too.
TABLE_KEYS = (
    *_Webhooks.model_fields, "keys", "rate_per_s", "burst", "max_upload_bytes",
    "max_body_bytes", "accounts", "strategy", "fallback", "weights", "channel",
)  # fmt: skip
CHANNELS = ("nxcloud.sms", "uspeedo.sms", "volc.vms.append", "volc.axn.bind", "sms")


def _table(r: Reader, keys: tuple[str, ...]) -> dict[str, Any]:
    table: dict[str, Any] = {}
    for _ in range(r.below(8)):
        key = r.pick(keys) if r.byte() % 4 else r.text()
        if key == "channel" and r.flag():
            table[key] = r.pick(CHANNELS)
        else:
            table[key] = toml_value(r, 1)
    return table


def document(r: Reader) -> dict[str, Any]:
    doc: dict[str, Any] = {}
    for _ in range(r.below(6)):
        which = r.byte() % 6
        if which == 0:
            doc[r.text()] = toml_value(r)
        elif which in (1, 2):
            accounts = doc.setdefault("accounts", {})
            if isinstance(accounts, dict):
                accounts[r.pick(("a", "b", r.text()))] = _table(r, ACCOUNT_KEYS)
        elif which == 3:
            doc["routes"] = {r.pick(("r", r.text())): _table(r, TABLE_KEYS)}
        else:
            doc[r.pick(("webhooks", "api", "simulator"))] = _table(r, TABLE_KEYS)
    return doc


def check(data: bytes) -> None:
    doc = document(Reader(data))
    # The CLI's quick check (no pydantic) may only pass what the models accept.
    quick = file_passes(doc, "fuzz.toml")
    try:
        accounts = parse_config(doc, "fuzz.toml")
        parse_webhooks(doc, "fuzz.toml")
        parse_route_tables(doc, accounts, "fuzz.toml")
        api = doc.get("api", {})
        _max_body_bytes(api, "fuzz.toml")
        _api_limits(api, "fuzz.toml")
    except ConfigError as exc:
        assert not quick, f"the quick check passed a file the models refuse: {exc}"
        assert str(exc).startswith("fuzz.toml")


if __name__ == "__main__":
    from tests.fuzz.runner import main

    main("config_tables")
