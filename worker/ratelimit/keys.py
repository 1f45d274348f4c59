"""The Redis keys of one account's rate-limit state, shared by every mechanism."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class AccountKeys:
    """Every Redis key of one account; the ``{name}`` hash tag keeps them in one Cluster slot."""

    base: str

    @classmethod
    def of(cls, prefix: str, account: str) -> AccountKeys:
        if "{" in account or "}" in account:
            raise ValueError(f"account name {account!r} must not contain braces (hash tag)")
        return cls(f"{prefix}:{{{account}}}")

    @property
    def state(self) -> str:
        return f"{self.base}:state"

    @property
    def mlog(self) -> str:
        return f"{self.base}:mlog"

    @property
    def hour(self) -> str:
        return f"{self.base}:hour"

    @property
    def day(self) -> str:
        return f"{self.base}:day"

    @property
    def slots(self) -> str:
        return f"{self.base}:slots"

    @property
    def slots_wake(self) -> str:
        return f"{self.base}:slots:wake"

    @property
    def departures(self) -> str:
        return f"{self.base}:departures"

    @property
    def answers(self) -> str:
        return f"{self.base}:answers"

    def recipient(self, phone: str) -> str:
        return f"{self.base}:r:{phone}"
