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
#: The same rules for an account with ``allow_any_number_type``: any valid number.
RELAXED_RULES: dict[str, ChannelRules] = {
    "nxcloud.sms": NxcloudRules(any_number_type=True),
    "uspeedo.sms": UspeedoRules(any_number_type=True),
    "volc.vms.append": VolcVmsRules(any_number_type=True),
    "volc.axn.bind": VolcAxnRules(any_number_type=True),
}


def rules_for(channel: str, *, any_number_type: bool = False) -> ChannelRules:
    try:
        return (RELAXED_RULES if any_number_type else RULES)[channel]
    except KeyError:
        raise ValueError(f"channel {channel!r} has no validation rules") from None
