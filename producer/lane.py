"""A job's lane options as given (priority word, expiry) and what is stored for them.

Separate from ``submit`` so the rule "explicit, else the account's default" is written once
for every way a job arrives (``SendJob``, ``enqueue_stream``, the CLI, the API).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from teledispatch.priorities import PRIORITIES, priority_value
from teledispatch.validation import Problem, ValidationFailed

if TYPE_CHECKING:  # the dry run checks a lane without the models (pydantic)
    from teledispatch.config import AccountConfig

#: A job's weight is relative to its lane's other jobs; bounded so no job can make the share
#: of another round to nothing for hours.
MAX_WEIGHT = 1000.0


@dataclass(frozen=True, slots=True)
class Lane:
    #: ``high`` / ``normal`` / ``low``; None: the account's ``default_priority``.
    priority: str | None = None
    #: Timezone-aware; None: ``ttl_s``, else the account's ``default_ttl_s``, else never.
    expires_at: datetime | None = None
    ttl_s: float | None = None
    #: Share of its lane's rate beside the lane's other active jobs; None: 1.
    weight: float | None = None

    def is_default(self) -> bool:
        return self.priority is None and self.expires_at is None and self.ttl_s is None

    def stored_weight(self) -> float:
        return 1.0 if self.weight is None else float(self.weight)

    def check(self) -> None:
        """Raise :class:`ValidationFailed` naming every bad option (before any recipient)."""
        problems = self.problems()
        if problems:
            raise ValidationFailed(problems)

    def problems(self) -> list[Problem]:
        """Every bad option, as :meth:`check` reports them."""
        problems = []
        if self.priority is not None and self.priority not in PRIORITIES:
            problems.append(Problem(None, "priority", self.priority, "one of high, normal, low"))
        if self.expires_at is not None and self.expires_at.utcoffset() is None:
            rule = "must carry a timezone (e.g. 2026-12-01T10:00:00Z)"
            problems.append(Problem(None, "expires_at", self.expires_at.isoformat(), rule))
        if self.ttl_s is not None and not self.ttl_s > 0:
            problems.append(Problem(None, "ttl_s", self.ttl_s, "must be > 0 seconds"))
        if self.expires_at is not None and self.ttl_s is not None:
            problems.append(
                Problem(None, "ttl_s", self.ttl_s, "give expires_at or ttl_s, not both")
            )
        if self.weight is not None and not 0 < self.weight <= MAX_WEIGHT:
            rule = f"must be > 0 and at most {MAX_WEIGHT:g}"
            problems.append(Problem(None, "weight", self.weight, rule))
        return problems

    def resolve(self, account: AccountConfig, start: float) -> tuple[int, float | None]:
        """``(priority, expires_at)`` as stored; a TTL counts from the job's ``start`` (now,
        or its ``not_before``): a scheduled OTP is worth as long as one sent now."""
        self.check()
        priority = priority_value(self.priority or account.default_priority)
        if self.expires_at is not None:
            return priority, self.expires_at.timestamp()
        ttl = self.ttl_s if self.ttl_s is not None else account.default_ttl_s
        return priority, None if ttl is None else start + ttl
