"""The dry run: a report of what a job would do, and nothing enqueued."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from teledispatch.cli import main as cli
from teledispatch.cli import send as send_cmd
from teledispatch.config import Settings, parse_config
from teledispatch.db.engine import get_engine
from teledispatch.db.tables import create_schema, jobs_table, messages_table
from teledispatch.pricing import price_for
from teledispatch.producer import dry_run as dry_run_mod
from teledispatch.producer import submit
from teledispatch.producer.dry_run import dry_run, send_seconds
from teledispatch.producer.submit import enqueue_stream
from tests.support import make_settings

PRICES = {"86": 0.05, "8613": 0.04, "*": 0.08}


@pytest.fixture
def cfg(db_url: str, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setattr(submit, "wake", lambda *a: None)
    return make_settings(db_url, prices=PRICES, max_messages_per_second=10)


def rows(cfg: Settings) -> tuple[int, int]:
    engine = get_engine(cfg.database_url)
    create_schema(engine)
    with engine.connect() as conn:
        count = sa.select(sa.func.count())
        return (
            int(conn.execute(count.select_from(jobs_table)).scalar_one()),
            int(conn.execute(count.select_from(messages_table)).scalar_one()),
        )


def test_longest_prefix_wins_and_star_prices_the_rest() -> None:
    table = tuple(PRICES.items())
    assert price_for(table, "+8613800138000") == 0.04
    assert price_for(table, "+8615000000000") == 0.05
    assert price_for(table, "+447700900000") == 0.08
    assert price_for((("44", 0.1),), "+8613800138000") is None
    assert price_for((), "+8613800138000") is None


def test_price_table_keys_are_checked() -> None:
    base = {"channel": "nxcloud.sms", "base_url": "http://x"}
    with pytest.raises(ValueError, match="prefix 'cn'"):
        parse_config({"accounts": {"a": {**base, "prices": {"cn": 0.1}}}})
    with pytest.raises(ValueError, match="number >= 0"):
        parse_config({"accounts": {"a": {**base, "prices": {"86": -1}}}})


def test_eta_takes_the_slowest_limit() -> None:
    acc = parse_config(
        {
            "accounts": {
                "a": {
                    "channel": "nxcloud.sms",
                    "base_url": "http://x",
                    "max_messages_per_second": 100,
                    "max_messages_per_hour": 1000,
                }
            }
        }
    )["a"]
    assert send_seconds(acc, 500) == 5.0
    assert send_seconds(acc, 2500) == 2 * 3600.0  # two full hours wait, the third is open
    unlimited = acc.model_copy(
        update={"max_messages_per_second": None, "max_messages_per_hour": None}
    )
    assert send_seconds(unlimited, 10) is None


def test_report_counts_everything_and_enqueues_nothing(cfg: Settings) -> None:
    enqueue_stream("nx", [{"phone": "+447911123001", "content": "queued"}] * 1, cfg=cfg)
    before = rows(cfg)
    recipients: list[dict[str, Any]] = [
        {"phone": "+8613800138000", "content": "a" * 161},  # gsm7, 2 parts, 0.04 each
        {"phone": "+8615000000000", "content": "你好"},  # ucs2, 1 part, 0.05
        {"phone": "+447911123002", "content": "hi"},  # gsm7, 1 part, 0.08
        {"phone": "+8613800138000", "content": "again"},  # duplicate
        {"phone": "12", "content": "hi"},  # invalid
    ]
    start = datetime.now(UTC) + timedelta(hours=1)
    report = dry_run("nx", recipients, not_before=start, cfg=cfg)
    assert rows(cfg) == before
    assert (report.recipients, report.invalid, report.duplicates) == (3, 2, 1)
    assert report.suppressed == 0
    assert report.segments == {"gsm7": 3, "ucs2": 1}
    assert report.cost == pytest.approx(0.04 * 2 + 0.05 + 0.08)
    assert report.backlog == 1
    assert [p.index for p in report.problems] == [3, 4]
    assert report.eta is not None
    eta = datetime.fromisoformat(report.eta)
    assert start < eta < start + timedelta(seconds=5)  # 4 messages at 10/s after the start


def test_cli_json_report(cfg: Settings, tmp_path: Path, monkeypatch: Any, capsys: Any) -> None:
    monkeypatch.setattr(
        send_cmd, "dry_run", lambda *a, **kw: dry_run_mod.dry_run(*a, **kw, cfg=cfg)
    )
    path = tmp_path / "c.csv"
    path.write_text("phone,name\n+8613800138000,Ana\n+8613800138001,\n")
    argv = ["send", "--account", "nx", "--csv", str(path), "--content", "Hi {name}", "--dry-run"]
    assert cli.main([*argv, "--json"]) == 2
    out = capsys.readouterr()
    report = json.loads(out.out)
    for key in ("recipients", "invalid", "suppressed", "segments", "cost", "eta"):
        assert key in report
    assert (report["recipients"], report["invalid"], report["segments"]) == (1, 1, {"gsm7": 1})
    assert report["problems"][0]["field"] == "name"
    assert "row 3 name" in out.err
    assert rows(cfg) == (0, 0)
    path.write_text("phone,name\n+8613800138000,Ana\n")
    assert cli.main(argv) == 0
    assert "recipients   1" in capsys.readouterr().out
    assert rows(cfg) == (0, 0)
