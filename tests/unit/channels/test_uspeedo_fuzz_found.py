"""A USpeedo answer the atheris harness (tests/fuzz/receipts.py) found crashing the receipt
poller: a ``RetCode`` string of digits ``str.isdigit()`` accepts but ``int()`` refuses
("000²१42") raised ValueError out of ``ret_code``, so the poll task (and ``parse_response``,
which reads RetCode the same way) died instead of treating the answer as unreadable."""

from __future__ import annotations

import pytest

from teledispatch.channels.base import OutMessage
from teledispatch.channels.uspeedo.adapter import UspeedoAdapter, ret_code
from teledispatch.channels.uspeedo.receipts import UspeedoReceiptPoller
from teledispatch.errors import MalformedResponseError
from tests.fuzz import receipts, responses

#: As atheris wrote it: a poll answered 200 with ``{"RetCode": "000²१42", ...}``.
FOUND = bytes.fromhex("0200000502001103ffff000000f8ff0402016d732217030037001f030005002003ffff0000")
MESSAGES = [OutMessage("m-0000000001", "+8613800138000", {"template_id": "T", "sender_id": "S"})]


@pytest.mark.parametrize("raw", ["000²१42", "²", "١٣", "０", "--5", "-"])
def test_a_retcode_that_is_no_ascii_number_is_unusable(raw: str) -> None:
    assert ret_code(raw) is None


@pytest.mark.parametrize(("raw", "code"), [("0", 0), (" -7 ", -7), ("215400", 215400)])
def test_ascii_retcodes_still_read(raw: str, code: int) -> None:
    assert ret_code(raw) == code


def test_the_poll_answer_is_unreadable_not_a_crash() -> None:
    body = '{"RetCode": "000²१42"}'.encode()
    with pytest.raises(MalformedResponseError):
        UspeedoReceiptPoller().parse_poll(200, body)


def test_the_send_answer_is_unreadable_not_a_crash() -> None:
    with pytest.raises(MalformedResponseError):
        UspeedoAdapter().parse_response(MESSAGES, 200, {}, '{"RetCode": "²"}'.encode())


def test_the_input_atheris_found_passes_the_doors() -> None:
    receipts.check(FOUND)
    # The same answer to a send: byte 0 picks USpeedo in the responses door.
    responses.check(bytes([1, 1, 0, 0, 0, 0, 1]) + b'{"RetCode": "000\xc2\xb2"}')
