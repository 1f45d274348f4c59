"""Delivery receipts: what a provider says happened *after* it accepted a message.

Three providers, three shapes: NXCloud pushes a DR per message to the ``drUrl`` we gave it,
Volcengine pushes call records for a voice task, USpeedo has to be asked (``USMSSendReceipt``,
polled by the worker). This module holds the pure mapping of each shape to one
:class:`Receipt`, the callback authentication, and the single SQL write that applies a
receipt — so the API, the poller and the tests all share one definition of "final".

**First final wins.** A receipt only moves a message that is ``sent`` or ``unknown`` (an
ambiguous send the provider evidently got) to ``delivered``/``undelivered``, as one
compare-and-set ``UPDATE … WHERE status IN ('sent', 'unknown')``. Providers retry pushes
(Volcengine) and carriers send late or contradictory reports; a terminal state is never
rewritten, so duplicates and out-of-order receipts change nothing. A receipt that arrives
before the worker has recorded the send (the message is still ``sending``) is not applied:
NXCloud pushes once, so such a DR is lost (rare: the worker records the answer immediately).

Callback tokens are secrets: nothing here logs, returns or raises with one.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from teledispatch.config import AccountConfig
from teledispatch.db.tables import messages_table
from teledispatch.statuses import DELIVERED, SETTLEABLE, UNDELIVERED

m = messages_table.c


@dataclass(frozen=True, slots=True)
class Receipt:
    """One final delivery outcome, provider-neutral."""

    delivered: bool
    #: The provider's own code (``"5/UNDELIV"``, ``"Fail/UNDELIV"``), kept for lookups.
    code: str
    #: Readable reason for an operator; ``""`` when delivered.
    text: str

    @property
    def status(self) -> str:
        return DELIVERED if self.delivered else UNDELIVERED


# --- NXCloud ----------------------------------------------------------------------------------

#: DR ``status`` → (delivered, reason). PROVIDERS.md §3; anything else is not a final report.
NXCLOUD_STATUS: dict[str, tuple[bool, str]] = {
    "2": (True, "delivered"),
    "5": (False, "delivery failed"),
    "6": (False, "rejected by the carrier"),
    "7": (False, "expired before delivery"),
    "8": (False, "deleted by the carrier"),
    "9": (False, "recipient is on a do-not-disturb list"),
    "10": (False, "invalid number"),
    "11": (False, "invalid sender id"),
    "12": (False, "carrier reported an unknown outcome"),
}
#: Used only when ``status`` is missing or unrecognised.
NXCLOUD_RESULT: dict[str, tuple[bool, str]] = {
    "DELIVRD": (True, "delivered"),
    "UNDELIV": (False, "undeliverable"),
}


@dataclass(frozen=True, slots=True)
class NxDr:
    message_id: str
    phone: str
    receipt: Receipt


def parse_nxcloud_dr(fields: Mapping[str, str]) -> NxDr | None:
    """A DR's fields (form body or query string) → the receipt, or None if it settles nothing."""
    message_id = (fields.get("messageid") or "").strip()
    if not message_id or len(message_id) > 100:
        return None
    status = (fields.get("status") or "").strip()
    result = (fields.get("result") or "").strip().upper()
    known = NXCLOUD_STATUS.get(status) or NXCLOUD_RESULT.get(result)
    if known is None:
        return None
    delivered, reason = known
    code = "/".join(p for p in (status, result) if p)[:64]
    return NxDr(
        message_id=message_id,
        phone=(fields.get("phone") or "").strip(),
        receipt=Receipt(delivered, code, "" if delivered else reason),
    )


# --- USpeedo ----------------------------------------------------------------------------------

#: ``ReceiptResult`` → delivered; ``Unknow`` (sic) and anything else: ask again later.
USPEEDO_RESULT: dict[str, bool] = {"Success": True, "Fail": False, "SubmitFail": False}


def uspeedo_receipt(item: Mapping[str, Any]) -> Receipt | None:
    """One ``ReceiptSet`` entry → the receipt, or None while the carrier has not answered."""
    result = item.get("ReceiptResult")
    if not isinstance(result, str) or result not in USPEEDO_RESULT:
        return None
    delivered = USPEEDO_RESULT[result]
    code = item.get("ReceiptCode")
    desc = item.get("ReceiptDesc")
    code_text = f"{result}/{code}" if isinstance(code, str) and code else result
    reason = desc if isinstance(desc, str) and desc else result
    return Receipt(delivered, code_text[:64], "" if delivered else reason[:1000])


# --- Volcengine -------------------------------------------------------------------------------


def volc_auth_code(timestamp: str, body: bytes, auth_token: str) -> str:
    """``hex(sha256(timestamp + hex(sha256(body)) + authToken))`` (PROVIDERS.md §1)."""
    inner = hashlib.sha256(body).hexdigest()
    return hashlib.sha256((timestamp + inner + auth_token).encode()).hexdigest()


def volc_verified(
    account: AccountConfig | None, timestamp: str, auth_code: str, body: bytes
) -> bool:
    """Constant-time check; an unknown account costs the same work as a wrong code, so the
    answer says nothing about which accounts exist."""
    token = account.callback_token.get_secret_value() if account is not None else ""
    expected = volc_auth_code(timestamp, body, token or "\x00unconfigured")
    ok = hmac.compare_digest(expected.encode(), auth_code.strip().lower().encode())
    return ok and bool(token) and account is not None and account.channel == "volc.vms.append"


@dataclass(frozen=True, slots=True)
class VolcRecord:
    task_open_id: str
    #: As the callback carries it: national digits, the form BatchAppend sent.
    phone: str
    receipt: Receipt

    @property
    def provider_id(self) -> str:
        return f"{self.task_open_id}:{self.phone}"


def _first(item: Mapping[str, Any], *keys: str) -> Any:
    for key in keys:
        if key in item and item[key] not in (None, ""):
            return item[key]
    return None


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _volc_items(doc: Any) -> Iterable[Mapping[str, Any]]:
    if isinstance(doc, list):
        for entry in doc:
            yield from _volc_items(entry)
    elif isinstance(doc, dict):
        inner = _first(doc, "Data", "data", "Records", "CallRecords")
        if isinstance(inner, list | dict):
            yield from _volc_items(inner)
        else:
            yield doc


def volc_record(item: Mapping[str, Any]) -> VolcRecord | None:
    """One call record → the receipt, or None when it names no task/phone or no outcome.

    The call-record body is not in the seeds; this reads the fields the VMS APIs use
    elsewhere (``TaskOpenId``, ``Phone``, ``Duration``, ``AnswerTime``, ``State``) and
    tolerates their usual variants. Answered (duration > 0 or an answer time) is
    ``delivered``; a record with a zero duration or only a result code is ``undelivered``.
    """
    task = _first(item, "TaskOpenId", "taskOpenId", "TaskId", "taskId")
    phone = _first(item, "Phone", "phone", "Called", "CalledNumber", "PhoneNo")
    if not isinstance(task, str | int) or not isinstance(phone, str | int):
        return None
    digits = "".join(ch for ch in str(phone) if ch.isdigit())
    if not digits:
        return None
    duration_raw = _first(item, "Duration", "duration", "CallDuration", "TalkDuration")
    duration = _number(duration_raw)
    answer = _first(item, "AnswerTime", "answerTime", "StartTime")
    answered_at = _number(answer)
    result = _first(item, "CallResult", "Result", "ReleaseType", "State", "Status", "status")
    answered = (duration is not None and duration > 0) or (
        answer is not None and (answered_at is None or answered_at > 0)
    )
    if answered:
        receipt = Receipt(True, str(result or "answered")[:64], "")
    elif duration is not None or result is not None:
        code = str(result if result is not None else "not_answered")[:64]
        receipt = Receipt(False, code, f"call not answered ({code})"[:1000])
    else:
        return None
    return VolcRecord(str(task), digits, receipt)


def parse_volc_records(body: bytes) -> list[VolcRecord]:
    """Every usable call record in a push (a single object, a list, or ``{"Data": …}``)."""
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError):
        return []
    return [r for r in (volc_record(i) for i in _volc_items(doc)) if r is not None]


# --- applying ---------------------------------------------------------------------------------


def nxcloud_token_ok(account: AccountConfig | None, presented: str) -> bool:
    """The per-account DR token, compared in constant time; unknown and misconfigured
    accounts take the same path as a wrong token."""
    token = account.callback_token.get_secret_value() if account is not None else ""
    ok = hmac.compare_digest(
        (token or "\x00unconfigured").encode(), presented.encode("utf-8", "replace")
    )
    return ok and bool(token) and account is not None and account.channel == "nxcloud.sms"


def settle(
    engine: Engine,
    account: str,
    receipt: Receipt,
    *,
    message_id: str | None = None,
    provider_id: str | None = None,
    now: float | None = None,
) -> int:
    """Apply one receipt to the matching message(s) still ``sent``/``unknown``; returns how
    many moved. The status guard in the ``WHERE`` is the whole duplicate story."""
    if (message_id is None) == (provider_id is None):
        raise ValueError("settle needs exactly one of message_id or provider_id")
    now = time.time() if now is None else now
    where = [m.account == account, m.status.in_(SETTLEABLE)]
    where.append(m.id == message_id if message_id is not None else m.provider_id == provider_id)
    values: dict[str, Any] = {
        "status": receipt.status,
        "error_code": None if receipt.delivered else receipt.code,
        "error_text": None if receipt.delivered else receipt.text,
        "final_at": now,
        "updated_at": now,
        # An ``unknown`` message has no send time: the receipt proves it left.
        "sent_at": sa.func.coalesce(m.sent_at, now),
    }
    if message_id is not None:
        # NXCloud's messageid is our id; an ambiguous send may not have recorded it yet.
        values["provider_id"] = sa.func.coalesce(m.provider_id, message_id)
    with engine.begin() as conn:
        result = conn.execute(sa.update(messages_table).where(*where).values(**values))
    return int(result.rowcount or 0)
