"""The TOML config ``--write-config`` produces: four accounts aimed at this simulator.

Account tables use exactly the keys of ``producer.config.AccountConfig``; the ``[simulator]``
table (ignored by the config loader) tells tests what exists inside the simulator.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from teledispatch.simulator.context import SimOptions
from teledispatch.simulator.state import (
    AXN_PHONE_X,
    AXN_POOL_NO,
    VMS_TASKS,
    VMS_TTS_TASKS,
    Credentials,
)


def _s(value: str) -> str:
    # A JSON string literal is a valid TOML basic string for everything json.dumps emits.
    return json.dumps(value, ensure_ascii=False)


def _list(values: tuple[str, ...]) -> str:
    return "[" + ", ".join(_s(v) for v in values) + "]"


def render_config(url: str, creds: Credentials, options: SimOptions) -> str:
    region = _s(options.volc_region)
    lines = [
        "# Written by the teledispatch simulator; the credentials are valid for this run only.",
        "",
        "[accounts.nxcloud]",
        'channel = "nxcloud.sms"',
        f"base_url = {_s(url)}",
        f"access_key = {_s(creds.nx_access_key)}",
        f"secret = {_s(creds.nx_secret)}",
        f"app_key = {_s(creds.nx_app_key)}",
        "",
        "[accounts.uspeedo]",
        'channel = "uspeedo.sms"',
        f"base_url = {_s(url)}",
        f"access_key = {_s(creds.us_access_key)}",
        f"secret = {_s(creds.us_secret)}",
        f"max_batch = {min(options.uspeedo_max_targets, 1000)}",
        "",
        "[accounts.volc-vms]",
        'channel = "volc.vms.append"',
        f"base_url = {_s(url)}",
        f"access_key = {_s(creds.vms_access_key)}",
        f"secret = {_s(creds.vms_secret)}",
        f"region = {region}",
        'service = "vms"',
        "",
        "[accounts.volc-axn]",
        'channel = "volc.axn.bind"',
        f"base_url = {_s(url)}",
        f"access_key = {_s(creds.axn_access_key)}",
        f"secret = {_s(creds.axn_secret)}",
        f"region = {region}",
        'service = "vms"',
        "",
        "[simulator]",
        f"url = {_s(url)}",
        f"vms_task_open_ids = {_list(VMS_TASKS)}",
        f"vms_tts_task_open_ids = {_list(VMS_TTS_TASKS)}",
        f"axn_number_pool_no = {_s(AXN_POOL_NO)}",
        f"axn_phone_x = {_list(AXN_PHONE_X)}",
        f"uspeedo_max_targets = {options.uspeedo_max_targets}",
        f"volc_region = {region}",
        "",
    ]
    return "\n".join(lines)


def write_config(path: Path, text: str) -> None:
    """Owner-only permissions, written then renamed so a reader never sees half a file."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, path)
