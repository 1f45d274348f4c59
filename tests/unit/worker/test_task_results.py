"""What Flower is shown: a dispatch task's result names its account, jobs and outcomes, and a
task whose request failed ends in FAILURE; the sweep sends no events at all."""

from __future__ import annotations

import json
from typing import Any

import pytest

from teledispatch.producer import submit as enqueue_mod
from teledispatch.producer.submit import enqueue_stream
from teledispatch.wakeups import SWEEP_TASK
from teledispatch.worker import task_results
from teledispatch.worker.context import Context
from teledispatch.worker.dispatch import dispatch
from teledispatch.worker.dispatch.common import Report
from teledispatch.worker.testing import MockTransport
from teledispatch.worker.transport import HttpResponse


@pytest.fixture(autouse=True)
def no_wakes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(enqueue_mod, "wake", lambda cfg, account, delay: None)


def _phones(n: int, start: int = 0) -> list[dict[str, str]]:
    return [{"phone": f"861380013{i:04d}"} for i in range(start, start + n)]


def test_a_dispatch_names_its_account_jobs_and_outcomes(ctx: Context) -> None:
    a = enqueue_stream("nx", _phones(3), defaults={"content": "hi"}, cfg=ctx.settings).job_id
    b = enqueue_stream("nx", _phones(2, 10), defaults={"content": "hi"}, cfg=ctx.settings).job_id
    result = task_results.finish("nx", dispatch(ctx, "nx"))
    assert result["account"] == "nx"
    assert result["jobs"] == {a: 3, b: 2}
    assert result["outcomes"] == {"sent": 5}
    assert result["failed_requests"] == 0 and "failures" not in result
    assert "8613800130000" not in json.dumps(result), "a recipient reached the task result"


def test_a_failed_request_makes_the_task_fail_with_its_summary(ctx: Context) -> None:
    ctx.transport = MockTransport(lambda request: HttpResponse(503, {}, b"busy"))
    job = enqueue_stream("nx", _phones(2), defaults={"content": "x"}, cfg=ctx.settings).job_id
    with pytest.raises(task_results.RequestsFailed) as failed:
        task_results.finish("nx", dispatch(ctx, "nx"))
    summary: dict[str, Any] = failed.value.summary
    assert summary["failed_requests"] == 1 and summary["failures"] == {"retryable": 1}
    assert summary["jobs"] == {job: 2} and summary["account"] == "nx"
    assert str(failed.value) == (
        f"1 of 1 requests failed (retryable=1); account=nx claimed=2 outcomes: queued=2;"
        f" jobs: {job}=2"
    )


def test_the_busiest_jobs_are_named_and_the_rest_counted() -> None:
    report = Report()
    report.add_jobs(["big"] * 5 + [f"j{i:02d}" for i in range(task_results.MAX_JOBS_SHOWN + 2)])
    result = task_results.summary("nx", report)
    assert len(result["jobs"]) == task_results.MAX_JOBS_SHOWN
    assert result["jobs"]["big"] == 5 and result["more_jobs"] == 3


def test_the_sweep_sends_no_events_and_dispatches_do() -> None:
    from teledispatch.worker.app import app
    from teledispatch.worker.tasks import sweep_task

    create = app.amqp.create_task_message
    # Positional as Celery's ``send_task`` calls it; the 17th argument asks for task-sent.
    sweep_msg = create("id1", SWEEP_TASK, [], {}, *([None] * 5), 0, *([None] * 6), True)
    dispatch_msg = create(
        "id2", "dispatch.nxcloud.sms", ["nx"], {}, *([None] * 5), 0, *([None] * 6), True
    )
    assert sweep_msg.sent_event is None
    assert dispatch_msg.sent_event is not None
    assert sweep_task.send_events is False
    assert app.tasks["dispatch.nxcloud.sms"].send_events is True
    assert task_results.RequestsFailed in app.tasks["dispatch.nxcloud.sms"].throws
