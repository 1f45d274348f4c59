"""The job contract: what an app hands to :func:`producer.enqueue`.

The same model is the JSON body of ``teledispatch send --job FILE`` and of the HTTP API, so a job
serialises to ``{"account": ..., "recipients": [{...}], "defaults": {...}, ...}`` with recipient
fields in snake_case of the provider's names.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from teledispatch.priorities import Priority


class SendJob(BaseModel):
    """One send job: an account, its recipients, and options that apply to all of them.

    Recipients are plain mappings rather than a model per channel, because which fields are
    allowed depends on the account's channel, known only once the config is read; the
    channel's rules then check every field (see :mod:`producer.channels`).
    """

    model_config = ConfigDict(extra="forbid")

    #: The account to send through; or give ``route`` (``[routes.NAME]``), not both.
    account: str | None = Field(default=None, min_length=1, max_length=100)
    #: A route: each message goes through the first of the route's accounts whose provider
    #: is up, and moves on to the next when it is down or refuses it (``teledispatch.routes``).
    route: str | None = Field(default=None, min_length=1, max_length=100)
    recipients: list[dict[str, Any]] = Field(min_length=1)
    #: Fields every recipient gets unless it sets its own (e.g. one ``content`` for all).
    defaults: dict[str, Any] = Field(default_factory=dict)
    #: Re-enqueueing the same key with the same content returns the same job and sends nothing.
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=200)
    #: Nothing is sent before this time (timezone-aware; naive means UTC).
    not_before: datetime | None = None
    #: Allow more than one message to the same recipient in this job.
    allow_duplicates: bool = False
    #: Lane: ``high`` is served before ``normal`` before ``low``; None: the account's default.
    priority: Priority | None = None
    #: A message not sent by then becomes ``expired`` (timezone-aware; a naive time is refused).
    expires_at: datetime | None = None
    #: Seconds from the job's start (now, or ``not_before``) until its messages expire; None:
    #: ``expires_at``, else the account's ``default_ttl_s``, else never.
    ttl_s: float | None = Field(default=None, gt=0)

    @field_validator("expires_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.utcoffset() is None:
            raise ValueError("expires_at must carry a timezone (e.g. 2026-12-01T10:00:00Z)")
        return value

    @model_validator(mode="after")
    def _one_expiry(self) -> SendJob:
        if self.expires_at is not None and self.ttl_s is not None:
            raise ValueError("give expires_at or ttl_s, not both")
        if (self.account is None) == (self.route is None):
            raise ValueError("give account or route (exactly one)")
        return self

    #: Status events of this job are POSTed here (else to the account's ``callback_url``).
    callback_url: str | None = Field(default=None, min_length=1, max_length=2000)
