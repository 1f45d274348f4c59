"""What a channel's validation rules look like to the producer."""

from __future__ import annotations

from typing import Any, Protocol

from teledispatch.validation import Problem


class ChannelRules(Protocol):
    channel: str
    #: Fields a recipient (or the job's defaults) may carry, snake_case of the provider's names.
    fields: frozenset[str]

    def validate(
        self, index: int, fields: dict[str, Any], problems: list[Problem], now: float
    ) -> dict[str, Any] | None:
        """Normalised fields (``phone`` in E.164 with ``+``), or None when a problem was added.

        ``fields`` is the recipient merged over the job's defaults. The result is what the
        worker's adapter receives, so it keeps only fields the adapter understands.
        """
        ...

    def group_key(self, fields: dict[str, Any]) -> str:
        """Messages with different keys never share a request (VMS ``TaskOpenId``); else ""."""
        ...

    def dedupe_key(self, fields: dict[str, Any]) -> str:
        """Two recipients of one job with the same key are the same message sent twice."""
        ...
