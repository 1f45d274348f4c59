"""Validating a job's recipients: every row checked (templates filled, duplicates refused),
the valid ones spooled, every problem counted."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from teledispatch import quiet_hours as quiet_hours_mod
from teledispatch.channels.base import ChannelRules
from teledispatch.channels.registry import rules_for, text_field
from teledispatch.config_file import ConfigError
from teledispatch.producer._spool import _Spool
from teledispatch.templates import TemplateError, has_placeholders, parse, render
from teledispatch.validation import Problem, ValidationFailed

#: Problems kept in memory for the error; the count beyond that is still reported.
PROBLEM_KEEP = 1000


class Account(Protocol):
    """What validation reads of an account: ``config.AccountConfig``, or the dry run's
    model-free view of a config file the quick check vouched for (``config_quick``)."""

    @property
    def name(self) -> str: ...
    @property
    def channel(self) -> str: ...
    @property
    def allow_any_number_type(self) -> bool: ...


class Accounts(Protocol):
    """Where the accounts are looked up: ``config.Settings``, or the dry run's view."""

    def account(self, name: str) -> Account: ...


def _as_epoch(value: datetime | None) -> float | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.timestamp()


def _check_quiet_hours(value: str | None) -> str | None:
    """The job's own window in canonical form; a bad one is a problem before any recipient."""
    try:
        return quiet_hours_mod.validate(value)
    except quiet_hours_mod.QuietHoursError:
        rule = "must be HH:MM-HH:MM (24-hour, local to the recipient), start != end"
        raise ValidationFailed([Problem(None, "quiet_hours", value, rule)]) from None


def _fill_template(
    index: int,
    fields: dict[str, Any],
    text: str | None,
    known: frozenset[str],
    variables: frozenset[str],
) -> list[Problem]:
    """Render the channel's text field from the row's other fields, in place. Template
    variables the channel does not know (CSV columns such as ``name``: ``variables`` for the
    job-wide template) are consumed, so they are not refused as unknown fields."""
    template = fields.get(text) if text is not None else None
    if text is None or not isinstance(template, str) or not has_placeholders(template):
        for name in variables:
            fields.pop(name, None)
        return []
    try:
        parsed = parse(template)
    except TemplateError as exc:
        return [Problem(index, text, template, str(exc))]
    rendered, problems = render(parsed, fields)
    found = [Problem(index, name, fields.get(name), rule) for name, rule in problems]
    for name in (parsed.names - known) | variables:
        fields.pop(name, None)
    fields[text] = rendered
    return found


def _default_template_names(defaults: Mapping[str, Any], text: str | None) -> frozenset[str]:
    """The placeholders of a job-wide template (job-wide values for them are allowed). One
    that cannot be parsed is one problem, not one per recipient."""
    template = defaults.get(text) if text is not None else None
    if not isinstance(template, str) or not has_placeholders(template):
        return frozenset()
    try:
        return parse(template).names
    except TemplateError as exc:
        raise ValidationFailed([Problem(None, f"defaults.{text}", template, str(exc))]) from None


@dataclass(slots=True)
class _Problems:
    """The problems found so far: the first :data:`PROBLEM_KEEP` kept, every one counted."""

    kept: list[Problem]
    total: int

    def add(self, found: list[Problem]) -> None:
        self.total += len(found)
        self.kept.extend(found[: max(0, PROBLEM_KEEP - len(self.kept))])


@dataclass(frozen=True, slots=True)
class _Job:
    """What every recipient of one job is checked against."""

    rules: ChannelRules
    #: The channel's text field (None: the channel sends no text of its own).
    text: str | None
    #: Job-wide template variables the channel does not know (consumed when filling).
    variables: frozenset[str]
    defaults: Mapping[str, Any]
    allow_duplicates: bool
    now: float


def _account(cfg: Accounts, account_name: str) -> Account:
    try:
        return cfg.account(account_name)
    except ConfigError as exc:
        raise ValidationFailed([Problem(None, "account", account_name, str(exc))]) from None


def _unknown_defaults(defaults: Mapping[str, Any], allowed: frozenset[str]) -> list[Problem]:
    return [
        Problem(None, f"defaults.{name}", defaults[name], "unknown field")
        for name in defaults
        if name not in allowed
    ]


def _duplicate(
    job: _Job, index: int, fields: dict[str, Any], clean: dict[str, Any], seen: set[str]
) -> Problem | None:
    """The problem if ``clean`` repeats a recipient already seen; else it is remembered."""
    key = job.rules.dedupe_key(clean)
    if key not in seen:
        seen.add(key)
        return None
    return Problem(
        index,
        "phone" if "phone" in fields else "phone_a",
        fields.get("phone", fields.get("phone_a")),
        "duplicate recipient in this job (set allow_duplicates to send again)",
    )


def _check_row(
    job: _Job, index: int, recipient: Mapping[str, Any], seen: set[str], spool: _Spool
) -> tuple[list[Problem], dict[str, Any] | None]:
    """One recipient's problems, and its clean fields (None when it has a problem)."""
    fields = {**job.defaults, **recipient} if job.defaults else dict(recipient)
    text = job.text
    content = fields.get(text) if text is not None else None
    found: list[Problem] = []
    # The common row (plain text, no template columns) pays two checks, not a call.
    if job.variables or (isinstance(content, str) and ("{" in content or "}" in content)):
        found = _fill_template(index, fields, text, job.rules.fields, job.variables)
    filled = not found
    # Validated even when the template failed, so one pass lists the row's every problem.
    clean = job.rules.validate(index, fields, found, job.now)
    clean = clean if filled else None
    if clean is not None and not job.allow_duplicates:
        duplicate = _duplicate(job, index, fields, clean, seen)
        if duplicate is not None:
            found.append(duplicate)
            clean = None
            spool.duplicates += 1
    return found, clean


def _raise_if_any(problems: _Problems, spool: _Spool) -> None:
    if problems.total == 0 and spool.count == 0:
        problems.total = 1
        problems.kept.append(Problem(None, "recipients", [], "must list at least one recipient"))
    if problems.total:
        raise ValidationFailed(problems.kept, total=problems.total)


def _validate(
    cfg: Accounts,
    account_name: str,
    recipients: Iterable[Mapping[str, Any]],
    defaults: Mapping[str, Any],
    allow_duplicates: bool,
    now: float,
    spool_for: Callable[[ChannelRules, Any], _Spool] | None = None,
) -> tuple[str, _Spool]:
    """Every recipient checked; returns the channel and the spooled rows, or raises.

    ``spool_for`` makes the spool that receives valid rows (the dry run's tally)."""
    account = _account(cfg, account_name)
    rules = rules_for(account.channel, any_number_type=account.allow_any_number_type)
    text = text_field(account.channel)
    variables = _default_template_names(defaults, text) - rules.fields
    unknown = _unknown_defaults(defaults, rules.fields | variables)
    problems = _Problems(unknown, len(unknown))
    job = _Job(rules, text, variables, defaults, allow_duplicates, now)
    seen: set[str] = set()
    spool = spool_for(rules, account) if spool_for is not None else _Spool(rules)
    try:
        for index, recipient in enumerate(recipients):
            if not isinstance(recipient, Mapping):
                problems.add([Problem(index, "recipient", recipient, "must be an object")])
                continue
            found, clean = _check_row(job, index, recipient, seen, spool)
            if found:
                spool.invalid_rows += 1
                problems.add(found)
            elif clean is not None:
                # After the first problem only the count goes on (unless the spool keeps all).
                if problems.total == 0 or spool.keeps_all:
                    spool.add(index, clean)
                else:
                    spool.count += 1
        _raise_if_any(problems, spool)
    except BaseException:
        spool.close()
        raise
    return account.channel, spool
