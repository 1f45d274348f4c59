"""Channel name → adapter. The only place that knows which adapters exist."""

from __future__ import annotations

from worker.providers.base import Adapter
from worker.providers.nxcloud import NxcloudAdapter
from worker.providers.uspeedo import UspeedoAdapter
from worker.providers.volc_axn import VolcAxnAdapter
from worker.providers.volc_vms import VolcVmsAdapter

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
