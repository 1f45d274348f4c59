"""Validation rules per channel; the registry maps a channel name to its rules."""

from __future__ import annotations

from producer.channels.base import ChannelRules
from producer.channels.nxcloud import NxcloudRules
from producer.channels.uspeedo import UspeedoRules
from producer.channels.volc_axn import VolcAxnRules
from producer.channels.volc_vms import VolcVmsRules

RULES: dict[str, ChannelRules] = {
    "nxcloud.sms": NxcloudRules(),
    "uspeedo.sms": UspeedoRules(),
    "volc.vms.append": VolcVmsRules(),
    "volc.axn.bind": VolcAxnRules(),
}


def rules_for(channel: str) -> ChannelRules:
    try:
        return RULES[channel]
    except KeyError:
        raise ValueError(f"channel {channel!r} has no validation rules") from None
