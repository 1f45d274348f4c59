"""NXCloud ``multi/mt`` batch SMS and the ``/api/sms/get`` status query
(docs/providers.md#nxcloud-batch-sms).

Shapes follow the vendor's page "批量短信下行发送"
(https://github.com/nxtele/http-api-document/wiki/批量短信下行发送). Request-level problems (auth,
throttling, malformed body, bad appKey) answer HTTP 200 with a non-zero ``code`` and
``data: null``, as the docs show. Per-item problems answer ``code: 0`` with that item
``status: "Failure"``. The docs' item ``message`` is plain text ("Incorrect phone number
format"); by default this simulator appends the code in parentheses (``"... (13005)"``) so a
client can recognise it, and ``nxcloud_plain_items`` answers in the real, plain form. 13007
(per-recipient cap) is item-level whatever the batch size, so one capped number never fails its
neighbours; ``nx_rate_limit_rate`` also refuses whole requests with 13007, which the code table
documents as a response code.

Refused as the real API refuses them: a body not sent as ``Content-Type: application/json``
(code 1002, whose documented meaning covers a bad body), and an item ``phone`` without its
country code (13005): the docs require "国码+手机号", and a bare Chinese mobile number such as
``13800138000`` is recognised as one that is not a valid number once read as international.
"""

from __future__ import annotations

import calendar
import json
import re
import time
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl

import phonenumbers

from teledispatch.simulator.context import Reply, Sim, json_reply
from teledispatch.simulator.nxcloud_sign import SIGNED_HEADERS, nxcloud_sign_matches
from teledispatch.simulator.state import NxMessage

CHANNEL = "nxcloud.sms"
QUERY_CHANNEL = "nxcloud.query"
MAX_ITEMS = 200
MAX_CONTENT = 1000
QUERY_DAYS = 31

TEXT: dict[int, str] = {
    -1: "Failure",
    0: "Success",
    1001: "Missing required header",
    1002: "Invalid bizType or action",
    1003: "Signature verification failed",
    1004: "Timestamp expired",
    1005: "Invalid accessKey or no permission",
    9000: "Request parameter error",
    13001: "Exceeded content length limit (1000 characters)",
    13002: "Unavailable app or incorrect key",
    13005: "Incorrect phone number format",
    13006: (
        "Incorrect source address (Source address must consist of 1 to 20 alphanumeric "
        "characters (letters or digits))"
    ),
    13007: "Rate limit exceeded (5 messages per hour)",
    13008: "TPS limit exceeded",
    13009: "Empty content or illegal Keywords",
}

_PHONE = re.compile(r"^[1-9]\d{6,19}$")
_SOURCE = re.compile(r"^[0-9A-Za-z]{1,20}$")
_SYS_ID = re.compile(r"^[0-9A-Za-z-]{10,50}$")
_DATE = re.compile(r"^\d{8}$")


_BARE_CN_MOBILE = re.compile(r"^1[3-9]\d{9}$")


def _item_message(code: int, plain: bool) -> str:
    return TEXT[code] if plain else f"{TEXT[code]} ({code})"


def _lacks_country_code(phone: str) -> bool:
    """A Chinese mobile number written without ``86``: 11 digits that are no valid number once
    read with a leading ``+`` (``13800138000`` would be NANP +1 380…, which does not exist).
    Numbers valid either way (``15088888888`` is also +1 508 888 8888) are let through."""
    if not _BARE_CN_MOBILE.match(phone):
        return False
    try:
        number = phonenumbers.parse("+" + phone, None)
    except phonenumbers.NumberParseException:
        return True
    return not phonenumbers.is_valid_number(number)


def _request_error(sim: Sim, t: float, ids: list[str], code: int, http_status: int = 200) -> Reply:
    sim.state.record(t=t, channel=CHANNEL, ids=ids, http_status=http_status, code=code, accepted=[])
    return json_reply(http_status, {"code": code, "message": TEXT[code], "data": None})


def _parse(body: bytes) -> dict[str, Any] | None:
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    return payload if isinstance(payload, dict) else None


def _item_id(item: Any) -> str:
    if isinstance(item, dict):
        sys_id = item.get("sysMessageId")
        if isinstance(sys_id, str) and sys_id:
            return sys_id
        phone = item.get("phone")
        if isinstance(phone, str):
            return phone
    return ""


def _ids(payload: dict[str, Any] | None) -> list[str]:
    items = payload.get("items") if payload else None
    return [_item_id(i) for i in items] if isinstance(items, list) else []


def check_auth(sim: Sim, headers: dict[str, str], body: bytes, now: float) -> int | None:
    """The auth code that refuses this request, or None. Order: presence, key, clock, sign."""
    params: dict[str, str] = {}
    for name in SIGNED_HEADERS:
        value = headers.get(name.lower())
        if not value:
            return 1001
        params[name] = value
    if not headers.get("sign"):
        return 1001
    creds = sim.credentials
    if params["accessKey"] != creds.nx_access_key:
        return 1005
    try:
        ts_ms = int(params["ts"])
    except ValueError:
        return 1004
    if abs(now - ts_ms / 1000.0) > sim.options.nx_max_skew_s:
        return 1004
    if not nxcloud_sign_matches(params, body, creds.nx_secret, headers["sign"]):
        return 1003
    return None


def _item_problem(item: dict[str, Any]) -> int | None:
    phone, content, source = item.get("phone"), item.get("content"), item.get("sourceAddress")
    if not isinstance(phone, str) or not _PHONE.match(phone) or _lacks_country_code(phone):
        return 13005
    if content is None or (isinstance(content, str) and not content.strip()):
        return 13009
    if not isinstance(content, str):
        return 9000
    if len(content) > MAX_CONTENT:
        return 13001
    if source is not None and (not isinstance(source, str) or not _SOURCE.match(source)):
        return 13006
    return None


def _malformed(payload: dict[str, Any]) -> bool:
    items = payload.get("items")
    if not isinstance(items, list) or not 1 <= len(items) <= MAX_ITEMS:
        return True
    for item in items:
        if not isinstance(item, dict):
            return True
        sys_id = item.get("sysMessageId")
        if sys_id is not None and (not isinstance(sys_id, str) or not _SYS_ID.match(sys_id)):
            return True
        for key in ("drUrl", "ext", "shortLink", "linkVerbose"):
            if item.get(key) is not None and not isinstance(item[key], str | int):
                return True
    return False


def segments(content: str) -> int:
    """Billing size: GSM-7-ish text fits 160 (153 when split), anything else 70 (67)."""
    single, multi = (160, 153) if content.isascii() else (70, 67)
    return 1 if len(content) <= single else -(-len(content) // multi)


def _fmt_time(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(t))


def _is_json(headers: dict[str, str]) -> bool:
    media_type = headers.get("content-type", "").split(";", 1)[0].strip().lower()
    return media_type == "application/json"


def _server_error(sim: Sim, t: float, ids: list[str], status: int) -> Reply:
    sim.state.record(t=t, channel=CHANNEL, ids=ids, http_status=status, code=-1, accepted=[])
    return json_reply(status, {"code": -1, "message": HTTPStatus(status).phrase, "data": None})


def send(sim: Sim, t: float, headers: dict[str, str], body: bytes) -> Reply:
    payload = _parse(body)
    ids = _ids(payload)
    auth = check_auth(sim, headers, body, t)
    if auth is not None:
        return _request_error(sim, t, ids, auth)
    if headers.get("biztype") != "3" or headers.get("action") != "mtsend":
        return _request_error(sim, t, ids, 1002)
    if not _is_json(headers):
        return _request_error(sim, t, ids, 1002)
    faults = sim.faults
    if faults.throttled(CHANNEL, headers["accesskey"], t):
        return _request_error(sim, t, ids, 13008)
    server_error = faults.server_error(CHANNEL)
    if server_error is not None:
        return _server_error(sim, t, ids, server_error)
    if faults.nx_rate_limited():
        return _request_error(sim, t, ids, 13007)
    if payload is None or _malformed(payload):
        return _request_error(sim, t, ids, 9000)
    if payload.get("appKey") != sim.credentials.nx_app_key:
        return _request_error(sim, t, ids, 13002)
    return _accept(sim, t, payload, ids)


def _accept(sim: Sim, t: float, payload: dict[str, Any], ids: list[str]) -> Reply:
    state, faults = sim.state, sim.faults
    cfg = faults.for_channel(CHANNEL)
    default_dr = payload.get("drUrl")
    data: list[dict[str, Any]] = []
    accepted: list[str] = []
    for item, item_id in zip(payload["items"], ids, strict=True):
        sys_id = item.get("sysMessageId")
        message_id = sys_id if sys_id else state.new_uuid()
        phone = str(item.get("phone", ""))
        problem = _item_problem(item)
        if problem is None and faults.unsupported(CHANNEL, phone):
            problem = 13005
        if problem is None and faults.item_fails(CHANNEL):
            problem = -1
        if problem is None and faults.recipient_refused(CHANNEL, phone, t):
            problem = 13007
        if problem is not None:
            data.append(
                {
                    "phone": phone,
                    "messageid": message_id,
                    "status": "Failure",
                    "message": _item_message(problem, cfg.nxcloud_plain_items),
                }
            )
            continue
        delivered = not faults.dr_fails(CHANNEL)
        delay = cfg.dr_delay_ms / 1000.0
        content = item["content"]
        sender = str(item.get("sourceAddress") or "")
        state.add_nx_message(message_id, NxMessage(phone, content, sender, t, t + delay, delivered))
        data.append({"phone": phone, "messageid": message_id, "status": "Success"})
        accepted.append(item_id)
        dr_url = item.get("drUrl") or default_dr
        if isinstance(dr_url, str) and dr_url:
            sim.schedule_dr(
                dr_url, _dr_form(message_id, phone, content, item, t, delay, delivered), delay
            )
    dropped = faults.drop_response(CHANNEL)
    state.record(
        t=t, channel=CHANNEL, ids=ids, http_status=200, code=0, accepted=accepted, dropped=dropped
    )
    reply = json_reply(200, {"code": 0, "message": "Success", "data": data})
    reply.drop = dropped
    return reply


def _dr_form(
    message_id: str,
    phone: str,
    content: str,
    item: dict[str, Any],
    t: float,
    delay: float,
    delivered: bool,
) -> dict[str, str]:
    return {
        "phone": phone,
        "status": "2" if delivered else "5",
        "result": "DELIVRD" if delivered else "UNDELIV",
        "drtime": _fmt_time(t + delay),
        "messageid": message_id,
        "sendtime": _fmt_time(t),
        "price": "0.0050",
        "currency": "USD",
        "rate": "1",
        "size": str(segments(content)),
        "ext": str(item.get("ext") or ""),
    }


def _query_error(sim: Sim, t: float, ids: list[str], code: str) -> Reply:
    sim.state.record(t=t, channel=QUERY_CHANNEL, ids=ids, http_status=200, code=code, accepted=[])
    return json_reply(200, {"code": code, "row": None})


def query(sim: Sim, t: float, headers: dict[str, str], body: bytes) -> Reply:
    """``/api/sms/get``: the docs' form (``appkey``, ``secretkey``, ``date``, ``messageid``),
    or the same fields signed with ``multi/mt``'s headers (any ``action``), since the header
    scheme is how the rest of the API authenticates."""
    if headers.get("content-type", "").startswith("application/json"):
        parsed = _parse(body) or {}
        fields = {k: str(v) for k, v in parsed.items()}
    else:
        fields = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
    message_id, date = fields.get("messageid", ""), fields.get("date", "")
    ids = [message_id] if message_id else []
    creds = sim.credentials
    if "sign" in headers:
        if check_auth(sim, headers, body, t) is not None:
            return _query_error(sim, t, ids, "2")
    elif fields.get("appkey") != creds.nx_app_key or fields.get("secretkey") != creds.nx_secret:
        return _query_error(sim, t, ids, "2")
    if not message_id or not _DATE.match(date):
        return _query_error(sim, t, ids, "1")
    try:
        day = calendar.timegm(time.strptime(date, "%Y%m%d"))
    except ValueError:
        return _query_error(sim, t, ids, "1")
    if t - day > (QUERY_DAYS + 1) * 86400:
        return _query_error(sim, t, ids, "3")
    message = sim.state.nx_message(message_id)
    row: dict[str, Any] | None = None
    # The date may be the send day in UTC or in China time (UTC+8): accept either.
    if message is not None and date in (_day(message.sent_at, 0), _day(message.sent_at, 8)):
        row = _row(message_id, message, t)
    sim.state.record(
        t=t, channel=QUERY_CHANNEL, ids=ids, http_status=200, code="0", accepted=ids if row else []
    )
    return json_reply(200, {"code": "0", "row": row})


def _day(t: float, offset_h: int) -> str:
    return time.strftime("%Y%m%d", time.gmtime(t + offset_h * 3600))


def _row(message_id: str, message: NxMessage, now: float) -> dict[str, Any]:
    """Before the DR is due the delivery fields are empty: the carrier has not answered yet."""
    done = now >= message.dr_due
    return {
        "billing_size": segments(message.content),
        "date": _fmt_time(message.sent_at),
        "senderid": message.sender,
        "phone": message.phone,
        "dr_time": _fmt_time(message.dr_due) if done else "",
        "billing_price": 0.005,
        "msgid": message_id,
        "billing_status": "Billed" if done else "UnBilled",
        "body": message.content,
        "dr_status": ("Success" if message.delivered else "Fail") if done else "",
        "dr": ("DELIVRD" if message.delivered else "UNDELIV") if done else "",
        "network": "SIMULATED",
    }
