"""Settings read once: the ``[api] keys`` raw value rides on Settings; env knobs fail loudly."""

from __future__ import annotations

from pathlib import Path

import pytest

from teledispatch.config import ConfigError, env_float, load_settings, worker_timings


def test_api_keys_come_with_the_single_read_of_the_file(tmp_path: Path) -> None:
    path = tmp_path / "teledispatch.toml"
    path.write_text('[api]\nkeys = ["sha256:ab"]\n')
    assert load_settings(path).api_keys == ["sha256:ab"]
    path.write_text('api = "not a table"\n')
    assert load_settings(path).api_keys is None
    assert load_settings(tmp_path / "missing.toml").api_keys == ()


def test_env_float(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TELEDISPATCH_SWEEP_S", raising=False)
    assert env_float("TELEDISPATCH_SWEEP_S", 1.5) == 1.5
    monkeypatch.setenv("TELEDISPATCH_SWEEP_S", "0.25")
    assert worker_timings().sweep_s == 0.25
    monkeypatch.setenv("TELEDISPATCH_SWEEP_S", "1s")
    with pytest.raises(ConfigError, match="TELEDISPATCH_SWEEP_S='1s'"):
        worker_timings()
