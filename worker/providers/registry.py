"""Channel name → adapter. The only place that knows which adapters exist."""

from __future__ import annotations

from worker.providers.base import Adapter
from worker.providers.nxcloud import NxcloudAdapter

ADAPTERS: dict[str, Adapter] = {"nxcloud.sms": NxcloudAdapter()}


def adapter_for(channel: str) -> Adapter:
    try:
        return ADAPTERS[channel]
    except KeyError:
        raise ValueError(f"no adapter for channel {channel!r}") from None
