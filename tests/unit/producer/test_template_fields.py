"""Templates at enqueue: filled per recipient, and every error names the row and field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from teledispatch.cli import main as cli
from teledispatch.cli import send as send_cmd
from teledispatch.config import Settings
from teledispatch.producer import submit
from teledispatch.producer.lookup import job_messages
from teledispatch.producer.submit import enqueue_stream, validate_stream
from teledispatch.validation import ValidationFailed
from tests.support import make_settings
from tests.unit.producer.test_submit import stored

TEMPLATE = "Hi {name}, your code is {code}"


@pytest.fixture
def cfg(db_url: str, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setattr(submit, "wake", lambda *a: None)
    return make_settings(db_url)


def test_each_recipient_gets_its_own_text(cfg: Settings) -> None:
    recipients: list[dict[str, Any]] = [
        {"phone": "+8613800138000", "name": "Ana", "code": 1234},
        {"phone": "+8613800138001", "name": "Bo", "code": "98", "content": "{{{name}}}"},
    ]
    job = enqueue_stream("nx", recipients, defaults={"content": TEMPLATE}, cfg=cfg)
    views = job_messages(job.job_id, cfg=cfg)
    assert [v.fields for v in views] == [
        {"phone": "+8613800138000", "content": "Hi Ana, your code is 1234"},
        {"phone": "+8613800138001", "content": "{Bo}"},
    ]


def test_a_job_wide_value_may_fill_a_placeholder(cfg: Settings) -> None:
    defaults = {"content": "{greeting} {name}", "greeting": "Hello"}
    recipients = [{"phone": "+8613800138000", "name": "Ana"}]
    job = enqueue_stream("nx", recipients, defaults=defaults, cfg=cfg)
    assert job_messages(job.job_id, cfg=cfg)[0].fields["content"] == "Hello Ana"


def test_every_template_problem_is_named_and_nothing_enqueued(cfg: Settings) -> None:
    recipients: list[dict[str, Any]] = [
        {"phone": "+8613800138000", "name": "Ana", "code": "1"},
        {"phone": "+8613800138001", "name": "Bo"},  # no code
        {"phone": "+8613800138002", "name": "x" * 1000, "code": "1"},  # renders too long
        {"phone": "+8613800138003", "content": "Hi {0}"},
        {"phone": "+8613800138004", "content": "Hi {name"},
        {"phone": "+8613800138005", "name": "Cy", "code": "1", "colour": "red"},
    ]
    with pytest.raises(ValidationFailed) as exc:
        enqueue_stream("nx", recipients, defaults={"content": TEMPLATE}, cfg=cfg)
    found = [(p.index, p.field) for p in exc.value.problems]
    assert found == [(1, "code"), (2, "content"), (3, "content"), (4, "content"), (5, "colour")]
    rules = [p.rule for p in exc.value.problems]
    assert "missing" in rules[0] and "unknown placeholder {0}" in rules[2]
    assert rules[3].startswith("malformed template")
    assert stored(cfg) == 0


def test_a_broken_job_wide_template_is_one_problem(cfg: Settings) -> None:
    recipients = [{"phone": f"+86138001380{i:02d}"} for i in range(50)]
    with pytest.raises(ValidationFailed) as exc:
        validate_stream("nx", recipients, defaults={"content": "Hi {name"}, cfg=cfg)
    assert exc.value.total == 1
    assert exc.value.problems[0].field == "defaults.content"


def test_csv_columns_fill_the_cli_template(
    cfg: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    real = submit.enqueue_stream
    monkeypatch.setattr(send_cmd, "enqueue_stream", lambda *a, **kw: real(*a, **kw, cfg=cfg))
    path = tmp_path / "people.csv"
    path.write_text("phone,name,code\n+8613800138000,Ana,11\n+8613800138001,Bo,\n")
    argv = ["send", "--account", "nx", "--csv", str(path), "--content", TEMPLATE]
    assert cli.main(argv) == 2
    assert "row 3 code = None: missing" in capsys.readouterr().err
    path.write_text("phone,name,code\n+8613800138000,Ana,11\n+8613800138001,Bo,22\n")
    assert cli.main(argv) == 0
    job_id = capsys.readouterr().out.strip()
    texts = [v.fields["content"] for v in job_messages(job_id, cfg=cfg)]
    assert texts == ["Hi Ana, your code is 11", "Hi Bo, your code is 22"]
