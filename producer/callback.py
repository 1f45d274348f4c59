"""A job's ``callback_url``, checked at enqueue by the rules delivery applies (the kernel's
:mod:`teledispatch.callback_urls`): a URL no worker would call is refused with the job, and
nothing is stored, instead of every event being dead-lettered later."""

from __future__ import annotations

from typing import Protocol

from teledispatch.callback_urls import url_problem
from teledispatch.producer.lane import Lane
from teledispatch.validation import Problem, ValidationFailed


class WebhookRules(Protocol):
    """What a callback URL is checked against: ``config.WebhookSettings``, or the dry run's
    model-free view of a ``[webhooks]`` table the quick check vouched for."""

    @property
    def allow_http(self) -> bool: ...
    @property
    def allow_private_networks(self) -> bool: ...


def callback_problems(url: str | None, cfg: WebhookRules) -> list[Problem]:
    """The rule ``url`` breaks under ``[webhooks]``, as a job-level problem (none: no URL)."""
    if url is None:
        return []
    rule = url_problem(
        url, allow_http=cfg.allow_http, allow_private_networks=cfg.allow_private_networks
    )
    return [] if rule is None else [Problem(None, "callback_url", url, rule)]


def check_options(lane: Lane, callback_url: str | None, cfg: WebhookRules) -> None:
    """Raise :class:`ValidationFailed` naming every bad job-wide option, before any recipient
    is read."""
    problems = lane.problems() + callback_problems(callback_url, cfg)
    if problems:
        raise ValidationFailed(problems)


__all__ = ["callback_problems", "check_options"]
