"""Validation rules per channel; the registry maps a channel name to its rules."""

from __future__ import annotations

from producer.channels.base import ChannelRules
from producer.channels.nxcloud import NxcloudRules

RULES: dict[str, ChannelRules] = {"nxcloud.sms": NxcloudRules()}


def rules_for(channel: str) -> ChannelRules:
    try:
        return RULES[channel]
    except KeyError:
        raise ValueError(f"channel {channel!r} has no validation rules") from None
