"""The OpenAPI document, completed where FastAPI's generator cannot say enough.

- **Recipients typed per channel.** At run time a recipient is a mapping checked by its
  account's channel rules (``teledispatch/channels/``), since the channel is known only from
  the account. The document instead offers one job shape per channel, told apart by the job's
  ``channel`` property (a discriminated union), whose recipients list that channel's fields,
  read from the channel registry: a generated client is typed, and no rule is written twice.
- **Links.** A created job's ``job_id`` leads to its status, messages and cancel operations.
"""

from __future__ import annotations

import copy
from typing import Any

from teledispatch.channels.registry import CHANNELS

#: From a created job (``POST /v1/jobs``, ``POST /v1/jobs/csv``) to what can be done with it.
JOB_LINKS: dict[str, Any] = {
    name: {
        "operationId": operation,
        "parameters": {"job_id": "$response.body#/job_id"},
        "description": description,
    }
    for name, operation, description in (
        ("GetJob", "get_job", "the job's progress"),
        ("GetJobMessages", "get_job_messages", "the job's messages"),
        ("CancelJob", "cancel_job", "cancel what is left of the job"),
    )
}

_REF = "#/components/schemas/"


def _title(channel: str) -> str:
    """``volc.vms.append`` → ``VolcVmsAppend``."""
    return "".join(part.capitalize() for part in channel.replace("_", ".").split("."))


def _recipient(channel: str, fields: frozenset[str], *, defaults: bool) -> dict[str, Any]:
    what = "Fields every recipient gets" if defaults else "One recipient"
    return {
        "title": f"{_title(channel)}{'Defaults' if defaults else 'Recipient'}",
        "type": "object",
        "description": f"{what} of a `{channel}` account; other properties are the "
        "variables of a `{name}` template. The channel's rules check every value.",
        "properties": {name: {} for name in sorted(fields)},
    }


def typed_jobs(schema: dict[str, Any]) -> dict[str, Any]:
    """Replace ``SendJob`` in ``schema`` (in place) by a union of one job per channel."""
    parts = schema.get("components", {}).get("schemas", {})
    base = parts.get("SendJob")
    if base is None or "oneOf" in base:
        return schema
    variants: dict[str, str] = {}
    for channel, spec in CHANNELS.items():
        name = _title(channel)
        parts[f"{name}Recipient"] = _recipient(channel, spec.rules.fields, defaults=False)
        parts[f"{name}Defaults"] = _recipient(channel, spec.rules.fields, defaults=True)
        job = copy.deepcopy(base)
        job["title"] = f"{name}Job"
        props = job["properties"]
        props["channel"] = {"type": "string", "enum": [channel], "description": "the account's"}
        props["recipients"] = {**props["recipients"], "items": {"$ref": f"{_REF}{name}Recipient"}}
        props["defaults"] = {"$ref": f"{_REF}{name}Defaults"}
        job["required"] = [*job.get("required", []), "channel"]
        parts[f"{name}Job"] = job
        variants[channel] = f"{_REF}{name}Job"
    parts["SendJob"] = {
        "title": "SendJob",
        "description": base.get("description", ""),
        "oneOf": [{"$ref": ref} for ref in variants.values()],
        "discriminator": {"propertyName": "channel", "mapping": variants},
    }
    return schema
