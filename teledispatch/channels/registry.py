"""Channel name → adapter. The only place that knows which adapters exist."""

from __future__ import annotations

from teledispatch.channels.base import Adapter
from teledispatch.channels.nxcloud.adapter import NxcloudAdapter
from teledispatch.channels.uspeedo.adapter import UspeedoAdapter
from teledispatch.channels.volc.axn_adapter import VolcAxnAdapter
from teledispatch.channels.volc.vms_adapter import VolcVmsAdapter

ADAPTERS: dict[str, Adapter] = {
    "nxcloud.sms": NxcloudAdapter(),
    "uspeedo.sms": UspeedoAdapter(),
    "volc.vms.append": VolcVmsAdapter(),
    "volc.axn.bind": VolcAxnAdapter(),
}


def adapter_for(channel: str) -> Adapter:
    try:
        return ADAPTERS[channel]
    except KeyError:
        raise ValueError(f"no adapter for channel {channel!r}") from None
