"""The quick config check (``teledispatch.config_quick``, no pydantic) passes only files the
models accept, and knows every setting the models have.

Its promise is one-sided: a file it passes loads; anything else takes the full loader, whose
``error:`` line is the one users see. ``tests/fuzz/config_tables.py`` checks the promise on
generated tables; here are the field tables and the forms the docs give.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from teledispatch.config import AccountConfig, ConfigError, WebhookSettings, load_settings
from teledispatch.config_quick import (
    ACCOUNT_FIELDS,
    ACCOUNT_REQUIRED,
    WEBHOOK_FIELDS,
    QuickAccount,
    database_url,
    file_passes,
    quick_config,
)

ACCOUNT = """
[accounts.nx]
channel = "nxcloud.sms"
base_url = "http://nx.test"
access_key = "ak"
secret = "ENV:TD_QUICK_SECRET"
"""
FULL = (
    ACCOUNT
    + """max_batch = 50
timeout_s = 2.5
on_ambiguous = "fail"
max_messages_per_hour = 1000
recipient_caps = [[3, "1h"], [10, 86400]]
prices = { "86" = 0.05, "*" = 0.08 }
quiet_hours = "21:00-08:00"
default_priority = "low"
allow_any_number_type = true

[accounts.us]
channel = "uspeedo.sms"
base_url = "http://us.test"

[routes.sms]
accounts = ["nx", "us"]

[routes.sms.us]
template_id = "T1"
sender_id = "ACME"

[webhooks]
allow_http = true
batch_size = 100

[api]
keys = []
rate_per_s = 0
"""
)


def test_the_field_tables_are_the_models_fields() -> None:
    assert set(ACCOUNT_FIELDS) == set(AccountConfig.model_fields) - {"name"}
    required = {n for n, f in AccountConfig.model_fields.items() if f.is_required()}
    assert required - {"name"} == ACCOUNT_REQUIRED
    assert set(WEBHOOK_FIELDS) == set(WebhookSettings.model_fields)


@pytest.mark.parametrize("text", [ACCOUNT, FULL, ""])
def test_files_the_docs_show_pass_and_load(
    text: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "teledispatch.toml"
    path.write_text(text)
    monkeypatch.setenv("TELEDISPATCH_CONFIG", str(path))
    monkeypatch.setenv("TD_QUICK_SECRET", "s")
    monkeypatch.setenv("DATABASE_URL", "sqlite:///x.db")
    assert database_url() == "sqlite:///x.db"
    load_settings(path)


@pytest.mark.parametrize(
    "extra",
    [
        "max_batch = -1",
        "timeout_s = 0",
        'quiet_hours = "21:00-21:00"',
        'quiet_hours = "25:00-08:00"',
        'recipient_caps = [[0, "1h"]]',
        'recipient_caps = [[1, "0s"]]',
        'prices = { "x" = 1 }',
        'prices = { "86" = -1 }',
        'channel2 = "typo"',
        'on_ambiguous = "never"',
        'callback_url = "ENV:TD_QUICK_UNSET"',
        "[webhooks]\nbatch_size = 0",
        "[api]\nburst = 0",
        '[routes.r]\naccounts = ["nobody"]',
        "[acounts.x]",
        "accounts = 1",
    ],
)
def test_anything_else_takes_the_full_loader(
    extra: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "teledispatch.toml"
    path.write_text(extra if extra.startswith(("[acounts", "accounts")) else ACCOUNT + extra)
    monkeypatch.setenv("TELEDISPATCH_CONFIG", str(path))
    monkeypatch.setenv("TD_QUICK_SECRET", "s")
    monkeypatch.delenv("TD_QUICK_UNSET", raising=False)
    assert database_url() is None
    with pytest.raises(ConfigError):
        load_settings(path)


def test_a_value_only_the_models_lax_mode_takes_is_theirs_to_judge(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "teledispatch.toml"
    path.write_text(ACCOUNT + 'max_batch = "5"\ntimeout_s = inf')
    monkeypatch.setenv("TELEDISPATCH_CONFIG", str(path))
    monkeypatch.setenv("TD_QUICK_SECRET", "s")
    assert database_url() is None
    assert load_settings(path).accounts["nx"].max_batch == 5


def test_a_named_file_that_is_missing_or_broken_takes_the_full_loader(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TELEDISPATCH_CONFIG", str(tmp_path / "absent.toml"))
    assert database_url() is None
    broken = tmp_path / "broken.toml"
    broken.write_text("[accounts\n")
    monkeypatch.setenv("TELEDISPATCH_CONFIG", str(broken))
    assert database_url() is None
    assert not file_passes({"accounts": {"a": {"name": "a"}}}, "x")


@pytest.mark.parametrize("text", [ACCOUNT, FULL, ACCOUNT + "max_requests_per_second = 3"])
def test_the_model_free_view_holds_what_the_models_hold(
    text: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # ``send --dry-run`` reads accounts and [webhooks] through this view when the file passes.
    path = tmp_path / "teledispatch.toml"
    path.write_text(text)
    monkeypatch.setenv("TELEDISPATCH_CONFIG", str(path))
    monkeypatch.setenv("TD_QUICK_SECRET", "s")
    quick = quick_config()
    full = load_settings(path)
    assert quick is not None and set(quick.tables) == set(full.accounts)
    for name, model in full.accounts.items():
        view = quick.account(name)
        for field in QuickAccount.__dataclass_fields__:
            got, want = getattr(view, field), getattr(model, field)
            assert (got, type(got)) == (want, type(want)), field
        assert view.batch_size == model.batch_size
    for flag in ("allow_http", "allow_private_networks"):
        assert getattr(quick.webhooks, flag) == getattr(full.webhooks, flag)
