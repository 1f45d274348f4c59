"""Volcengine privacy number ``BindAXN`` (bind A to a specified X),
docs/providers.md#volcengine-bindaxn.

One binding per request (the account's batch size is 1). A binding carries its own deadline,
``ExpireTime``: the gateway refuses one less than 60 s ahead, and a binding queued behind a
backlog or a retry backoff can pass that point before it is sent. So the window is checked
twice: by the rules at enqueue, and here just before sending —

* :meth:`VolcAxnAdapter.precheck` ``(message, now) -> ItemOutcome | None`` returns a ``failed``
  outcome (code ``ExpireTimeTooSoon`` / ``ExpireTimeInvalid``) for a binding that must not be
  sent, or None. A dispatcher may call it per message before building a request.
* :meth:`VolcAxnAdapter.build_request` runs the same check and raises :class:`RejectedError`
  with that code instead of returning a request, so even a dispatcher that never calls
  ``precheck`` sends nothing stale: the error arrives like a refusal from the provider.

Phones (A, B, X) are sent in national form, like BatchAppend (see :mod:`volc_vms`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from urllib.parse import quote, urlencode

from teledispatch.channels.base import BatchResult, HttpRequest, ItemOutcome, ItemStatus, OutMessage
from teledispatch.channels.ids import VOLC_AXN_BIND
from teledispatch.channels.volc import gateway as volc_sign
from teledispatch.channels.volc.axn_rules import MAX_EXPIRE_TIME, MIN_LEAD_S, expire_time_of
from teledispatch.channels.volc.vms_adapter import national_phone, url
from teledispatch.config import AccountConfig
from teledispatch.errors import MalformedResponseError, RejectedError

QUERY = "?Action=BindAXN&Version=2022-01-01"
CONTENT_TYPE = "application/x-www-form-urlencoded"

#: Added at send time for the request's transit and clock skew between us and the gateway.
SEND_MARGIN_S = 5

_PHONE_FIELDS = {"phone_b": "PhoneNoB", "phone_x": "PhoneNoX"}


def _form(message: OutMessage) -> list[tuple[str, str]]:
    fields = message.fields
    pairs = [("PhoneNoA", national_phone(message.phone))]
    for ours, theirs in _PHONE_FIELDS.items():
        value = fields.get(ours)
        if isinstance(value, str) and value:
            pairs.append((theirs, national_phone(value)))
    if fields.get("number_pool_no") is not None:
        pairs.append(("NumberPoolNo", str(fields["number_pool_no"])))
    pairs.append(("ExpireTime", str(expire_time_of(fields))))
    flag = fields.get("audio_record_flag", 1)
    pairs.append(("AudioRecordFlag", "0" if flag in (0, "0") else "1"))
    if fields.get("user_data") is not None:
        pairs.append(("UserData", str(fields["user_data"])))
    return pairs


class VolcAxnAdapter:
    channel = VOLC_AXN_BIND

    def precheck(self, message: OutMessage, now: float) -> ItemOutcome | None:
        """A ``failed`` outcome for a binding that may no longer be sent, else None."""
        expire = expire_time_of(message.fields)
        if expire is None or expire >= MAX_EXPIRE_TIME:
            return ItemOutcome(
                message.id,
                "failed",
                error_code="ExpireTimeInvalid",
                error_text="expire_time is not a unix time before 2038-01-01 (UTC+8)",
            )
        lead = expire - now
        if not lead > MIN_LEAD_S + SEND_MARGIN_S:  # also refuses a NaN clock
            return ItemOutcome(
                message.id,
                "failed",
                error_code="ExpireTimeTooSoon",
                error_text=(
                    f"binding not sent: expire_time is {lead:.0f} s away at send time, "
                    f"the provider needs more than {MIN_LEAD_S} s"
                ),
            )
        return None

    def build_request(
        self, account: AccountConfig, messages: Sequence[OutMessage], now: float
    ) -> HttpRequest:
        if len(messages) != 1:
            raise ValueError(f"BindAXN binds one number per request, got {len(messages)}")
        message = messages[0]
        stale = self.precheck(message, now)
        if stale is not None:
            raise RejectedError(stale.error_text or "stale binding", code=stale.error_code)
        body = urlencode(_form(message), quote_via=quote).encode("ascii")
        target = url(account, QUERY)
        headers = volc_sign.signed_headers(account, "POST", target, CONTENT_TYPE, body, now)
        return HttpRequest("POST", target, headers, body)

    def parse_response(
        self, messages: Sequence[OutMessage], status: int, headers: Mapping[str, str], body: bytes
    ) -> BatchResult:
        try:
            result = volc_sign.result_or_raise(status, headers, body)
        except RejectedError as exc:
            if exc.code in volc_sign.AUTH_CODES or status in (401, 403):
                raise  # the account is refused, not this binding
            # ConflictWithExisting, InvalidParameter, ...: this binding failed, and with one
            # binding per request that is all the request held.
            return _all(messages, "failed", None, exc.code, exc.message)
        sub_id = result.get("SubId")
        if not isinstance(sub_id, str) or not sub_id:
            raise MalformedResponseError("BindAXN answered without a SubId")
        sub_id = sub_id[:200]
        state = result.get("Status")
        if state == 2:
            return _all(messages, "failed", sub_id, "BindStatusError", "binding status 2 (error)")
        if state == 0:
            return _all(messages, "failed", sub_id, "BindStatusUnbound", "binding status 0")
        return _all(messages, "sent", sub_id, None, None)


def _all(
    messages: Sequence[OutMessage],
    status: ItemStatus,
    provider_id: str | None,
    code: str | None,
    text: str | None,
) -> BatchResult:
    return BatchResult([ItemOutcome(m.id, status, provider_id, code, text) for m in messages])
