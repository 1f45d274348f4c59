"""Validation rules per channel; the registry maps a channel name to its rules."""

from __future__ import annotations

from teledispatch.channels.nxcloud.rules import NxcloudRules
from teledispatch.channels.rules_base import ChannelRules
from teledispatch.channels.uspeedo.rules import UspeedoRules
from teledispatch.channels.volc.axn_rules import VolcAxnRules
from teledispatch.channels.volc.vms_rules import VolcVmsRules

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
