"""USpeedo bad credentials, answered as the simulator does (HTTP 401, no RetCode): a
request-level refusal with a clear reason, not retried and not "the provider is unwell"."""

from __future__ import annotations

import json

import pytest

from teledispatch.channels.base import OutMessage
from teledispatch.channels.uspeedo.adapter import UspeedoAdapter
from teledispatch.errors import RejectedError

MESSAGES = [OutMessage("j-0", "+447911123456", {"template_id": "T", "sender_id": "S"})]


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (401, json.dumps({"message": "Unauthorized"}).encode()),
        (401, b""),
        (403, b"Forbidden"),
        (401, json.dumps({"RetCode": 0, "Message": "ok"}).encode()),  # the status decides
    ],
)
def test_refused_credentials_fail_the_request_and_do_not_open_the_circuit(
    status: int, body: bytes
) -> None:
    headers = {"www-authenticate": 'Basic realm="uspeedo"'}
    with pytest.raises(RejectedError) as err:
        UspeedoAdapter().parse_response(MESSAGES, status, headers, body)
    exc = err.value
    assert str(exc) == f"[{status}] USpeedo refused the account's credentials (HTTP {status})"
    assert not exc.unwell and not exc.retryable and not exc.may_have_been_sent
