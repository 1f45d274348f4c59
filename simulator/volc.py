"""Volcengine VMS ``BatchAppend`` and ``BindAXN`` behind a signature-checking gateway.

Gateway answers come first (auth, action/version, throttling ``FlowLimitExceeded`` HTTP 429,
``ServiceUnavailable``/``InternalError``), then the action's own checks. Error HTTP statuses follow
the Volcengine VMS API reference pages "BatchAppend - 追加号码" and "AXN绑定(指定X号码)": client
errors 400, signature problems 403, missing/unknown key 401 (docs/providers.md#volcengine-errors).
BatchAppend wants numbers as that page's example writes them, digits only (national form for the
Chinese mainland): a ``+86…`` number is refused as a FailList ``INVALID_PHONE_FORMAT`` entry.
``--item-fail-rate`` produces FailList entries of type ``SIMULATED_FAILURE`` (real FailList types
beyond the three documented ones exist, so clients must not choke on unknown types) and, for
BindAXN, ``OperationDenied``. A per-recipient cap hit is FailList type ``FREQUENCY_LIMIT`` for
BatchAppend and ``QuotaExceeded`` for BindAXN.
"""

from __future__ import annotations

import json
import re
import time
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl

from teledispatch.simulator.context import Reply, Sim, json_reply
from teledispatch.simulator.state import AxnBinding
from teledispatch.simulator.volc_sign import VolcAuthError, verify_request

APPEND_CHANNEL = "volc.vms.append"
BIND_CHANNEL = "volc.axn.bind"
VERSION = "2022-01-01"
SERVICE = "vms"
MAX_PHONES = 10_000
MAX_PHONE_PARAM = 2048
MAX_TTS = 250
MAX_EXT = 250
MAX_USER_DATA = 2048
MIN_EXPIRE_AHEAD_S = 60
#: 2038-01-01T00:00:00Z, the documented upper bound for ``ExpireTime``.
EXPIRE_LIMIT = 2_145_916_800

_ACTIONS = {"BatchAppend": APPEND_CHANNEL, "BindAXN": BIND_CHANNEL}
_VMS_PHONE = re.compile(r"^\d{5,20}$")
_AXN_PHONE = re.compile(r"^\d{5,20}$")

_SERVER_ERRORS = {
    503: ("ServiceUnavailable", "The request has failed due to a temporary failure of the server."),
    500: ("InternalError", "The request has failed due to an unknown error."),
}


def _server_error(status: int) -> tuple[str, str]:
    """The documented code for 500/503; any other chosen status gets its reason phrase."""
    if status in _SERVER_ERRORS:
        return _SERVER_ERRORS[status]
    phrase = HTTPStatus(status).phrase
    return phrase.replace(" ", "").replace("-", ""), phrase


def channel_of(raw_query: str) -> str:
    """The channel a gateway request is for, from its ``Action``."""
    return _ACTIONS.get(dict(parse_qsl(raw_query)).get("Action", ""), "volc.unknown")


class _ActionError(Exception):
    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


def _missing(name: str) -> _ActionError:
    return _ActionError("MissingParameter", f"The required parameter {name} is missing.")


def _invalid(name: str) -> _ActionError:
    return _ActionError("InvalidParameter", f"The specified parameter {name} is invalid.")


class _Call:
    """One request's envelope fields, so every answer carries the same metadata."""

    def __init__(self, sim: Sim, t: float, action: str, ids: list[str]) -> None:
        self.sim, self.t, self.action, self.ids = sim, t, action, ids
        self.channel = _ACTIONS.get(action, "volc.unknown")
        stamp = time.strftime("%Y%m%d%H%M%S", time.gmtime(t))
        self.request_id = stamp + f"{sim.state.new_serial('')[-18:]}".upper()

    def metadata(self) -> dict[str, Any]:
        return {
            "RequestId": self.request_id,
            "Action": self.action,
            "Version": VERSION,
            "Service": SERVICE,
            "Region": self.sim.options.volc_region,
        }

    def error(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> Reply:
        self.sim.state.record(
            t=self.t, channel=self.channel, ids=self.ids, http_status=status, code=code, accepted=[]
        )
        meta = self.metadata()
        meta["Error"] = {"Code": code, "Message": message}
        return json_reply(status, {"ResponseMetadata": meta}, headers)

    def success(self, result: dict[str, Any], accepted: list[str]) -> Reply:
        dropped = self.sim.faults.drop_response(self.channel)
        self.sim.state.record(
            t=self.t,
            channel=self.channel,
            ids=self.ids,
            http_status=200,
            code=None,
            accepted=accepted,
            dropped=dropped,
        )
        reply = json_reply(200, {"ResponseMetadata": self.metadata(), "Result": result})
        reply.drop = dropped
        return reply


def _parse_json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None


def _form(body: bytes) -> dict[str, str]:
    return dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))


def _ids(action: str, body: bytes) -> tuple[list[str], Any]:
    """Per-item identities for the log (phones), and the parsed body for reuse."""
    if action == "BatchAppend":
        payload = _parse_json(body)
        phones = payload.get("PhoneList") if isinstance(payload, dict) else None
        if isinstance(phones, list):
            return [str(p.get("Phone", "")) if isinstance(p, dict) else "" for p in phones], payload
        return [], payload
    if action == "BindAXN":
        form = _form(body)
        return ([form["PhoneNoA"]] if "PhoneNoA" in form else []), form
    return [], None


def handle(
    sim: Sim,
    t: float,
    method: str,
    path: str,
    raw_query: str,
    headers: dict[str, str],
    body: bytes,
) -> Reply:
    query = dict(parse_qsl(raw_query, keep_blank_values=True))
    action = query.get("Action", "")
    ids, payload = _ids(action, body)
    call = _Call(sim, t, action, ids)
    try:
        access_key = verify_request(
            method=method,
            path=path,
            raw_query=raw_query,
            headers=headers,
            body=body,
            secret_for=sim.credentials.volc_secret,
            region=sim.options.volc_region,
            service=SERVICE,
            now=t,
        )
    except VolcAuthError as exc:
        return call.error(exc.status, exc.code, exc.message)
    if not action:
        return call.error(400, "MissingAction", "The request is missing an action.")
    if action not in _ACTIONS or query.get("Version") != VERSION:
        return call.error(
            404,
            "InvalidActionOrVersion",
            f"Could not find operation {action} for version {query.get('Version')}.",
        )
    if sim.faults.throttled(call.channel, access_key, t):
        return call.error(
            429, "FlowLimitExceeded", "Request has exceeded the flow limit.", {"Retry-After": "1"}
        )
    server_error = sim.faults.server_error(call.channel)
    if server_error is not None:
        return call.error(server_error, *_server_error(server_error))
    try:
        if action == "BatchAppend":
            return _append(call, payload)
        return _bind(call, payload)
    except _ActionError as exc:
        return call.error(exc.status, exc.code, exc.message)


def _check_lengths(index: int, item: dict[str, Any]) -> None:
    limits = (
        ("PhoneParamJson", MAX_PHONE_PARAM),
        ("PhoneParam", MAX_PHONE_PARAM),
        ("TtsContent", MAX_TTS),
        ("Ext", MAX_EXT),
    )
    for key, limit in limits:
        value = item.get(key)
        if value is not None and (not isinstance(value, str) or len(value) > limit):
            raise _invalid(f"PhoneList[{index}].{key}")


def _task_and_phones(call: _Call, payload: Any) -> tuple[str, set[str], list[dict[str, Any]]]:
    """The request-level checks of BatchAppend: the task's id, its numbers so far, the items."""
    if not isinstance(payload, dict):
        raise _invalid("body")
    task_id, phones = payload.get("TaskOpenId"), payload.get("PhoneList")
    if not task_id:
        raise _missing("TaskOpenId")
    if not phones:
        raise _missing("PhoneList")
    if not isinstance(task_id, str) or not isinstance(phones, list):
        raise _invalid("TaskOpenId" if not isinstance(task_id, str) else "PhoneList")
    if len(phones) > MAX_PHONES:
        raise _ActionError(
            "PhoneListExceedLimit",
            f"PhoneList has {len(phones)} numbers; at most {MAX_PHONES} allowed.",
        )
    task = call.sim.state.vms_tasks.get(task_id)
    if task is None:
        raise _ActionError("TaskNotFound", f"Task {task_id} does not exist.")
    for index, item in enumerate(phones):
        if not isinstance(item, dict):
            raise _invalid(f"PhoneList[{index}]")
        _check_lengths(index, item)
    return task_id, task, phones


def _item_failure(
    call: _Call, task: set[str], needs_params: bool, item: dict[str, Any]
) -> tuple[str, str] | None:
    """``(Type, Desc)`` of the FailList entry for ``item``, or None when it is appended."""
    phone = item.get("Phone")
    faults = call.sim.faults
    if not isinstance(phone, str) or not _VMS_PHONE.match(phone):
        return "INVALID_PHONE_FORMAT", "号码格式错误"
    if phone in task:
        return "REDUPLICATED_ITEM", "重复项目"
    if needs_params and not item.get("PhoneParamJson") and not item.get("PhoneParam"):
        return "TTS_PARAM_EMPTY", "TTS参数为空"
    if faults.item_fails(APPEND_CHANNEL):
        return "SIMULATED_FAILURE", "Simulated failure (--item-fail-rate)"
    if faults.recipient_refused(APPEND_CHANNEL, phone, call.t):
        return "FREQUENCY_LIMIT", "Recipient frequency limit exceeded"
    return None


def _append(call: _Call, payload: Any) -> Reply:
    task_id, task, phones = _task_and_phones(call, payload)
    needs_params = task_id in call.sim.state.vms_tts_tasks
    fail_list: list[dict[str, Any]] = []
    accepted: list[str] = []
    for index, item in enumerate(phones):
        failure = _item_failure(call, task, needs_params, item)
        if failure is None:
            task.add(item["Phone"])
            accepted.append(item["Phone"])
        else:
            kind, desc = failure
            fail_list.append(
                {"Index": index, "Phone": str(item.get("Phone")), "Type": kind, "Desc": desc}
            )
    return call.success({"TaskOpenId": task_id, "FailList": fail_list}, accepted)


def _bind_form(call: _Call, form: dict[str, str]) -> tuple[str, str, str, int]:
    """The checks of BindAXN that need no state beyond the pools: ``(A, B, X, ExpireTime)``."""
    for name in ("PhoneNoA", "PhoneNoX", "NumberPoolNo", "ExpireTime"):
        if not form.get(name):
            raise _missing(name)
    a, b, x = form["PhoneNoA"], form.get("PhoneNoB", ""), form["PhoneNoX"]
    for name, value in (("PhoneNoA", a), ("PhoneNoB", b), ("PhoneNoX", x)):
        if value and not _AXN_PHONE.match(value):
            raise _invalid(name)
    pool = call.sim.state.axn_pools.get(form["NumberPoolNo"])
    if pool is None:
        raise _invalid("NumberPoolNo")
    if x not in pool:
        raise _invalid("PhoneNoX")
    try:
        expire = int(form["ExpireTime"])
    except ValueError:
        raise _invalid("ExpireTime") from None
    if not call.t + MIN_EXPIRE_AHEAD_S < expire < EXPIRE_LIMIT:
        raise _invalid("ExpireTime")
    if form.get("AudioRecordFlag", "1") not in ("0", "1"):
        raise _invalid("AudioRecordFlag")
    if len(form.get("UserData", "")) > MAX_USER_DATA:
        raise _invalid("UserData")
    return a, b, x, expire


def _bind(call: _Call, form: dict[str, str]) -> Reply:
    a, b, x, expire = _bind_form(call, form)
    sim, now = call.sim, call.t
    existing = sim.state.axn_bindings.get((a, x))
    if existing is not None and existing.expire_time > now:
        raise _ActionError("ConflictWithExisting", "Conflict with existing")
    if sim.faults.item_fails(BIND_CHANNEL):
        raise _ActionError(
            "OperationDenied", "Operation is denied because the specified resource is in use."
        )
    if sim.faults.recipient_refused(BIND_CHANNEL, a, now):
        raise _ActionError("QuotaExceeded", "PhoneNoA has exceeded the quota.")
    sub_id = "S" + sim.state.new_serial("")
    sim.state.axn_bindings[(a, x)] = AxnBinding(sub_id, a, b, x, expire)
    result = {
        "SubId": sub_id,
        "PhoneNoX": x,
        "Status": 1,
        "PhoneNoXCityCode": "010",
        "PhoneNoA": a,
        "PhoneNoACityCode": "010",
        "PhoneNoB": b,
        "PhoneNoBCityCode": "010" if b else "",
    }
    return call.success(result, [a])
