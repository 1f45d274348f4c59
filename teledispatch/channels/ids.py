"""Channel ids: the one spelling of each channel name.

A channel is one provider operation (``nxcloud.sms`` = NXCloud batch SMS). The ids are stored in
the database, named in account files and in queue names, so they never change once released.
"""

from __future__ import annotations

from typing import Final, Literal

NXCLOUD_SMS: Final = "nxcloud.sms"
USPEEDO_SMS: Final = "uspeedo.sms"
VOLC_VMS_APPEND: Final = "volc.vms.append"
VOLC_AXN_BIND: Final = "volc.axn.bind"

#: The type of an account's ``channel`` key; pydantic refuses any other value.
Channel = Literal["nxcloud.sms", "uspeedo.sms", "volc.vms.append", "volc.axn.bind"]
