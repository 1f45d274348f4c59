"""The job contract: what an app hands to :func:`producer.enqueue`.

The same model is the JSON body of ``teledispatch send --job FILE`` and of the HTTP API, so a job
serialises to ``{"account": ..., "recipients": [{...}], "defaults": {...}, ...}`` with recipient
fields in snake_case of the provider's names.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from teledispatch.channels.ids import Channel
from teledispatch.priorities import Priority
from teledispatch.quiet_hours import validate as validate_quiet_hours


class SendJob(BaseModel):
    """One send job: an account, its recipients, and options that apply to all of them.

    Recipients are plain mappings rather than a model per channel, because which fields are
    allowed depends on the account's channel, known only once the config is read; the
    channel's rules then check every field (see :mod:`producer.channels`). The OpenAPI
    document still types them per channel, from the same rules (``teledispatch.api.openapi``).
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
    #: Share of the account's rate beside other active jobs of its lane (default 1): a job of
    #: weight 2 gets twice the rows of a job of weight 1 while both have rows to send.
    weight: float | None = Field(default=None, gt=0, le=1000)

    #: ``"21:00-08:00"``: hours (local to each recipient, from the number) when ``normal`` and
    #: ``low`` messages are held until the window ends; None: the account's ``quiet_hours``.
    quiet_hours: str | None = Field(default=None, max_length=40)

    @field_validator("quiet_hours")
    @classmethod
    def _quiet(cls, value: str | None) -> str | None:
        return validate_quiet_hours(value)

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

    #: The account's channel, if the sender states it: the OpenAPI document's discriminator
    #: that types ``recipients`` per channel. A channel other than the account's is refused.
    channel: Channel | None = None

    def channel_rule(self, account_channel: str) -> str | None:
        """Why the stated ``channel`` does not fit an account of ``account_channel``, or None."""
        if self.channel is None or self.channel == account_channel:
            return None
        return f"is not this account's channel ({account_channel})"
