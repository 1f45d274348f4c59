"""What a dispatch task tells Flower: the account, the jobs it served, the outcomes.

Flower shows a task's state and its result (or exception) from the worker's events, never the
database. A task whose requests all failed used to succeed with a count buried in its result, so
a provider outage showed "Failed 0". A task with a failed request now ends in Celery's FAILURE
state with :class:`RequestsFailed`, whose text is the same summary: the Failed tab lists it and
the messages themselves are unaffected (their outcomes were written before the task ended).
"""

from __future__ import annotations

from typing import Any

from teledispatch.worker.dispatch.common import Report

#: Jobs named in a result, the busiest first: a task serving thousands of single-message jobs
#: must not put thousands of ids in every event Flower keeps.
MAX_JOBS_SHOWN = 10


class RequestsFailed(Exception):
    """A dispatch task sent at least one request that failed; the text is the task's summary.

    Declared in the task's ``throws``: Celery then logs it in one line at INFO, as an expected
    outcome, not as a worker error with a traceback (the failure itself was logged where the
    request ended).
    """

    def __init__(self, summary: dict[str, Any]) -> None:
        # Plain ``key=value`` text: Flower shows the exception's repr, where JSON's quotes
        # came out backslash-escaped.
        super().__init__(
            f"{summary['failed_requests']} of {summary['requests']} requests failed"
            f" ({_pairs(summary.get('failures', {}))}); account={summary['account']}"
            f" claimed={summary['claimed']} outcomes: {_pairs(summary['outcomes'])};"
            f" jobs: {_pairs(summary['jobs'])}"
            + (f" and {summary['more_jobs']} more" if "more_jobs" in summary else "")
        )
        self.summary = summary


def _pairs(counts: dict[str, int]) -> str:
    return " ".join(f"{k}={v}" for k, v in counts.items()) or "none"


def summary(account: str, report: Report) -> dict[str, Any]:
    """The task's result: small, no recipient and no secret (Flower shows it to operators)."""
    busiest = sorted(report.jobs.items(), key=lambda kv: (-kv[1], kv[0]))[:MAX_JOBS_SHOWN]
    result: dict[str, Any] = {
        "account": account,
        "claimed": report.claimed,
        "requests": report.requests,
        "failed_requests": report.failed_requests,
        "outcomes": dict(sorted(report.counts.items())),
        "jobs": dict(busiest),
    }
    if len(report.jobs) > len(busiest):
        result["more_jobs"] = len(report.jobs) - len(busiest)
    if report.failures:
        result["failures"] = dict(sorted(report.failures.items()))
    return result


def finish(account: str, report: Report) -> dict[str, Any]:
    """The result to return, or :class:`RequestsFailed` raised when a request failed."""
    result = summary(account, report)
    if report.failed_requests:
        raise RequestsFailed(result)
    return result
