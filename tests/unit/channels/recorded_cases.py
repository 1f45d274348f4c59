"""Replaying a recorded provider answer (``recorded/<provider>.json``) through an adapter.

Each case has ``status``, ``body`` (JSON) or ``body_text``, and either ``raises`` (the error
class, with optional ``code`` and ``text``) or ``items`` (what each message becomes; each test
module compares the columns its provider fills).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pytest

from teledispatch import errors
from teledispatch.channels.base import Adapter, BatchResult, OutMessage


def body_of(case: dict[str, Any]) -> bytes:
    if "body" in case:
        return json.dumps(case["body"], ensure_ascii=False).encode()
    text: str = case["body_text"]
    return text.encode("utf-8")


def replay(adapter: Adapter, messages: Sequence[OutMessage], case: dict[str, Any]) -> BatchResult:
    """The adapter's answer to the case's recorded response."""
    return adapter.parse_response(list(messages), case["status"], {}, body_of(case))


def check_raised(
    adapter: Adapter, messages: Sequence[OutMessage], case: dict[str, Any]
) -> errors.DispatchError:
    """The case must raise the recorded error class, with its code and text if recorded."""
    with pytest.raises(getattr(errors, case["raises"])) as info:
        replay(adapter, messages, case)
    assert type(info.value).__name__ == case["raises"]
    if "code" in case:
        assert info.value.code == case["code"]
    if "text" in case:
        assert info.value.message == case["text"]
    raised: errors.DispatchError = info.value
    return raised
