"""The job contract: what an app hands to :func:`producer.enqueue`.

The same model is the JSON body of ``teledispatch send --job FILE`` and of the HTTP API, so a job
serialises to ``{"account": ..., "recipients": [{...}], "defaults": {...}, ...}`` with recipient
fields in snake_case of the provider's names.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class SendJob(BaseModel):
    """One send job: an account, its recipients, and options that apply to all of them.

    Recipients are plain mappings rather than a model per channel, because which fields are
    allowed depends on the account's channel, known only once the config is read; the
    channel's rules then check every field (see :mod:`producer.channels`).
    """

    model_config = ConfigDict(extra="forbid")

    account: str = Field(min_length=1, max_length=100)
    recipients: list[dict[str, Any]] = Field(min_length=1)
    #: Fields every recipient gets unless it sets its own (e.g. one ``content`` for all).
    defaults: dict[str, Any] = Field(default_factory=dict)
    #: Re-enqueueing the same key with the same content returns the same job and sends nothing.
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=200)
    #: Nothing is sent before this time (timezone-aware; naive means UTC).
    not_before: datetime | None = None
    #: Allow more than one message to the same recipient in this job.
    allow_duplicates: bool = False
    #: Status events of this job are POSTed here (else to the account's ``callback_url``).
    callback_url: str | None = Field(default=None, min_length=1, max_length=2000)
