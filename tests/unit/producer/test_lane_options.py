"""``SendJob`` lane options and ``teledispatch send --priority/--ttl/--expires-at``."""

from __future__ import annotations

from datetime import datetime

import pytest
from pydantic import ValidationError

from teledispatch.cli.main import main
from teledispatch.producer.jobs import SendJob


def test_sendjob_takes_priority_and_one_expiry() -> None:
    job = SendJob.model_validate(
        {"account": "a", "recipients": [{"phone": "+1"}], "priority": "high", "ttl_s": 600}
    )
    assert (job.priority, job.ttl_s, job.expires_at) == ("high", 600, None)
    with pytest.raises(ValidationError, match="not both"):
        SendJob.model_validate(
            {
                "account": "a",
                "recipients": [{"phone": "+1"}],
                "ttl_s": 5,
                "expires_at": "2030-01-01T00:00:00Z",
            }
        )
    with pytest.raises(ValidationError, match="timezone"):
        SendJob(account="a", recipients=[{"phone": "+1"}], expires_at=datetime(2030, 1, 1))
    with pytest.raises(ValidationError):
        SendJob.model_validate({"account": "a", "recipients": [{}], "priority": "urgent"})


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--expires-at", "2030-01-01T00:00:00"], "--expires-at '2030-01-01T00:00:00': give a"),
        (["--expires-at", "tomorrow"], "--expires-at 'tomorrow': not an ISO time"),
    ],
)
def test_cli_refuses_a_naive_or_bad_expiry(
    argv: list[str], says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["send", "--account", "nx", "--to", "+8613800000000", "--content", "x", *argv])
    err = capsys.readouterr().err
    assert code == 2 and says in err and "Traceback" not in err


def test_cli_refuses_an_unknown_priority(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["send", "--account", "nx", "--to", "+1", "--priority", "urgent"])
    assert exit_.value.code == 2
    assert "--priority: invalid choice: 'urgent'" in capsys.readouterr().err
