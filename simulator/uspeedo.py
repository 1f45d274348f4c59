"""USpeedo ``SendBatchUSMSMessage`` and ``USMSSendReceipt`` (docs/providers.md#uspeedo-batch-sms).

Two documented answer shapes, chosen by the ``uspeedo_shape`` fault option:

* ``basic`` (default): the Basic-auth endpoint's reference
  (https://docs.uspeedo.com/docs/sms/api/, "SendBatchUSMSMessage"): ``SessionNo`` is a list,
  one per ``TaskContent`` element that had an accepted number, and refused numbers are listed in
  ``FailedTargetPhones`` as ``{Phone, TemplateParams, FailureReason}``.
* ``sdk``: the official SDKs' response type
  (https://github.com/uSpeedo/uspeedo-sdk-python, ``uspeedo/services/asms/apis/
  SendBatchUSMSMessageResp.py``) and the same action on the older gateway
  (https://docs.ucloud.cn/api/usms-api/usms): one string ``SessionNo`` for the request (left out
  when nothing was accepted), ``SuccessCount``, and ``FailContent`` — per ``TaskContent``
  ``{TemplateId, SenderId, FailureDetails, Target: [{Phone, TemplateParams, FailureDetails}]}``
  — present with ``RetCode`` 0 too; ``uspeedo_partial_retcode`` gives an answer with failures
  a non-zero ``RetCode``, still with ``FailContent`` and ``SessionNo`` (a partial success).

Auth is HTTP Basic checked the way an API gateway does: a bad or missing key is HTTP 401 with no
``RetCode`` (the vendor's examples read the body only on HTTP 200; no error body for bad
credentials is documented). Throttling (``--tps``) is HTTP 429 with ``Retry-After``, also
gateway-shaped, since USpeedo documents no rate-limit code. Server faults answer HTTP
``fail_status``/500 with ``RetCode 215400`` (the documented retryable server error). The receipt
query reports per phone.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import re
from typing import Any
from urllib.parse import parse_qsl

from teledispatch.simulator.context import Reply, Sim, json_reply
from teledispatch.simulator.state import UsTarget

CHANNEL = "uspeedo.sms"
RECEIPT_CHANNEL = "uspeedo.receipt"
MAX_RECEIPT_IDS = 100
MAX_MESSAGE = 500
BAD_PARAMETER = 215392
MISSING_PARAMETER = 215397
SERVER_ERROR = 215400

_PHONE = re.compile(r"^\+?[1-9]\d{5,19}$")


def _basic_ok(sim: Sim, headers: dict[str, str]) -> bool:
    scheme, _, token = headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        user, _, password = base64.b64decode(token.strip(), validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return False
    creds = sim.credentials
    return hmac.compare_digest(user, creds.us_access_key) and hmac.compare_digest(
        password, creds.us_secret
    )


def _unauthorized() -> Reply:
    return json_reply(
        401,
        {"message": "Unauthorized"},
        {"WWW-Authenticate": 'Basic realm="uspeedo"'},
    )


def _phones(payload: Any) -> list[str]:
    out: list[str] = []
    tasks = payload.get("TaskContent") if isinstance(payload, dict) else None
    if isinstance(tasks, list):
        for task in tasks:
            targets = task.get("Target") if isinstance(task, dict) else None
            if isinstance(targets, list):
                out.extend(str(t.get("Phone", "")) if isinstance(t, dict) else "" for t in targets)
    return out


def _error(sim: Sim, t: float, ids: list[str], code: int, message: str) -> Reply:
    sim.state.record(t=t, channel=CHANNEL, ids=ids, http_status=200, code=code, accepted=[])
    return json_reply(200, {"RetCode": code, "Message": message})


def _validate(payload: Any, max_targets: int) -> tuple[int, str] | None:
    """First request-level problem as (RetCode, Message), or None."""
    if not isinstance(payload, dict):
        return BAD_PARAMETER, "Invalid parameter [body]"
    tasks = payload.get("TaskContent")
    if tasks is None or tasks == []:
        return MISSING_PARAMETER, "Missing parameter [TaskContent]"
    if not isinstance(tasks, list):
        return BAD_PARAMETER, "Invalid parameter [TaskContent]"
    for task in tasks:
        problem = _task_problem(task)
        if problem is not None:
            return problem
    if sum(len(task["Target"]) for task in tasks) > max_targets:
        return BAD_PARAMETER, f"Invalid parameter [Target]: more than {max_targets} numbers"
    return None


def _task_problem(task: Any) -> tuple[int, str] | None:
    if not isinstance(task, dict):
        return BAD_PARAMETER, "Invalid parameter [TaskContent]"
    for key in ("TemplateId", "SenderId", "Target"):
        if not task.get(key):
            return MISSING_PARAMETER, f"Missing parameter [{key}]"
    if not isinstance(task["TemplateId"], str) or not isinstance(task["SenderId"], str):
        return BAD_PARAMETER, "Invalid parameter [TemplateId]"
    targets = task["Target"]
    if not isinstance(targets, list):
        return BAD_PARAMETER, "Invalid parameter [Target]"
    for target in targets:
        if not isinstance(target, dict) or not target.get("Phone"):
            return MISSING_PARAMETER, "Missing parameter [Phone]"
        params = target.get("TemplateParams", [])
        if not isinstance(params, list) or not all(isinstance(p, str) for p in params):
            return BAD_PARAMETER, "Invalid parameter [TemplateParams]"
    return None


def send(sim: Sim, t: float, headers: dict[str, str], body: bytes) -> Reply:
    try:
        payload: Any = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        payload = None
    ids = _phones(payload)
    state, faults = sim.state, sim.faults
    if not _basic_ok(sim, headers):
        state.record(t=t, channel=CHANNEL, ids=ids, http_status=401, code=None, accepted=[])
        return _unauthorized()
    if faults.throttled(CHANNEL, sim.credentials.us_access_key, t):
        state.record(t=t, channel=CHANNEL, ids=ids, http_status=429, code=None, accepted=[])
        return json_reply(429, {"message": "Too Many Requests"}, {"Retry-After": "1"})
    server_error = faults.server_error(CHANNEL)
    if server_error is not None:
        state.record(
            t=t, channel=CHANNEL, ids=ids, http_status=server_error, code=SERVER_ERROR, accepted=[]
        )
        return json_reply(server_error, {"RetCode": SERVER_ERROR, "Message": "Server error"})
    problem = _validate(payload, sim.options.uspeedo_max_targets)
    if problem is not None:
        return _error(sim, t, ids, *problem)
    return _accept(sim, t, payload["TaskContent"], ids)


def _target_problem(target: dict[str, Any]) -> str | None:
    phone = target["Phone"]
    if not isinstance(phone, str) or not _PHONE.match(phone):
        return "Invalid phone number"
    if sum(len(p) for p in target.get("TemplateParams", [])) > MAX_MESSAGE:
        return f"Message longer than {MAX_MESSAGE} characters"
    return None


class _Outcome:
    """Per ``TaskContent`` element: the accepted receipts and the refused targets."""

    def __init__(self, task: dict[str, Any]) -> None:
        self.task = task
        self.receipts: list[UsTarget] = []
        self.failed: list[tuple[dict[str, Any], str]] = []


def _judge(sim: Sim, t: float, task: dict[str, Any]) -> _Outcome:
    faults = sim.faults
    delay = faults.for_channel(CHANNEL).dr_delay_ms / 1000.0
    outcome = _Outcome(task)
    for target in task["Target"]:
        phone = str(target["Phone"])
        reason = _target_problem(target)
        if reason is None and faults.item_fails(CHANNEL):
            reason = "Send failed (simulated)"
        if reason is None and faults.recipient_refused(CHANNEL, phone, t):
            reason = "Frequency limit exceeded for this number"
        if reason is None:
            outcome.receipts.append(UsTarget(phone, t, t + delay, not faults.dr_fails(CHANNEL)))
        else:
            outcome.failed.append((target, reason))
    return outcome


def _basic_body(sim: Sim, outcomes: list[_Outcome]) -> dict[str, Any]:
    sessions: list[str] = []
    for outcome in outcomes:
        if outcome.receipts:
            session = sim.state.new_uuid()
            sim.state.add_us_session(session, outcome.receipts)
            sessions.append(session)
    failed = [
        {
            "Phone": str(target["Phone"]),
            "TemplateParams": target.get("TemplateParams", []),
            "FailureReason": reason,
        }
        for outcome in outcomes
        for target, reason in outcome.failed
    ]
    return {"RetCode": 0, "Message": "success", "SessionNo": sessions, "FailedTargetPhones": failed}


def _sdk_body(sim: Sim, outcomes: list[_Outcome]) -> dict[str, Any]:
    receipts = [r for outcome in outcomes for r in outcome.receipts]
    code = 0
    if any(outcome.failed for outcome in outcomes):
        code = sim.faults.for_channel(CHANNEL).uspeedo_partial_retcode
    message = "success" if code == 0 else "Some numbers failed"
    body: dict[str, Any] = {"RetCode": code, "Message": message, "SuccessCount": len(receipts)}
    if receipts:
        session = sim.state.new_uuid()
        sim.state.add_us_session(session, receipts)
        body["SessionNo"] = session
    body["FailContent"] = [
        {
            "TemplateId": outcome.task["TemplateId"],
            "SenderId": outcome.task["SenderId"],
            "FailureDetails": "",
            "Target": [
                {
                    "Phone": str(target["Phone"]),
                    "TemplateParams": target.get("TemplateParams", []),
                    "FailureDetails": reason,
                }
                for target, reason in outcome.failed
            ],
        }
        for outcome in outcomes
        if outcome.failed
    ]
    return body


def _accept(sim: Sim, t: float, tasks: list[dict[str, Any]], ids: list[str]) -> Reply:
    outcomes = [_judge(sim, t, task) for task in tasks]
    accepted = [r.phone for outcome in outcomes for r in outcome.receipts]
    sdk = sim.faults.for_channel(CHANNEL).uspeedo_shape == "sdk"
    body = _sdk_body(sim, outcomes) if sdk else _basic_body(sim, outcomes)
    dropped = sim.faults.drop_response(CHANNEL)
    sim.state.record(
        t=t,
        channel=CHANNEL,
        ids=ids,
        http_status=200,
        code=body["RetCode"],
        accepted=accepted,
        dropped=dropped,
    )
    reply = json_reply(200, body)
    reply.drop = dropped
    return reply


def receipt(sim: Sim, t: float, headers: dict[str, str], raw_query: str) -> Reply:
    """Receipts stay ``Unknow`` until the simulated carrier answers (``--dr-delay-ms``)."""
    session_ids = [v for k, v in parse_qsl(raw_query, keep_blank_values=True) if k == "id"]
    state = sim.state
    if not _basic_ok(sim, headers):
        state.record(
            t=t, channel=RECEIPT_CHANNEL, ids=session_ids, http_status=401, code=None, accepted=[]
        )
        return _unauthorized()
    code, message = 0, ""
    if not session_ids:
        code, message = MISSING_PARAMETER, "Missing parameter [id]"
    elif len(session_ids) > MAX_RECEIPT_IDS:
        code, message = BAD_PARAMETER, f"Invalid parameter [id]: at most {MAX_RECEIPT_IDS}"
    if code:
        state.record(
            t=t, channel=RECEIPT_CHANNEL, ids=session_ids, http_status=200, code=code, accepted=[]
        )
        return json_reply(200, {"RetCode": code, "Message": message})
    data: list[dict[str, Any]] = []
    for session in session_ids:
        targets = state.us_session(session)
        if targets is not None:
            data.append({"SessionNo": session, "ReceiptSet": [_receipt(x, t) for x in targets]})
    state.record(
        t=t,
        channel=RECEIPT_CHANNEL,
        ids=session_ids,
        http_status=200,
        code=0,
        accepted=[d["SessionNo"] for d in data],
    )
    return json_reply(200, {"RetCode": 0, "Action": "USMSSendReceipt", "Data": data})


def _receipt(target: UsTarget, now: float) -> dict[str, Any]:
    if now < target.receipt_due:
        result, code, desc, when = "Unknow", "", "Waiting for the carrier's report", 0
    elif target.delivered:
        result, code, desc, when = "Success", "DELIVRD", "Delivered", int(target.receipt_due)
    else:
        result, code, desc, when = "Fail", "UNDELIV", "Undeliverable", int(target.receipt_due)
    return {
        "Phone": target.phone,
        "CostCount": 1,
        "ReceiptResult": result,
        "ReceiptCode": code,
        "ReceiptDesc": desc,
        "ReceiptTime": when,
        "UserId": "",
    }
