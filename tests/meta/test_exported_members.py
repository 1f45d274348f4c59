"""The app-facing surface: what ``teledispatch.producer`` exports, and one error root.

An app should be able to write ``except teledispatch.Error`` around any call, and code written
before the root existed (``except ValueError``) must keep catching what it caught.
"""

from __future__ import annotations

import pytest

import teledispatch
import teledispatch.producer as producer
from teledispatch.config import ConfigError
from teledispatch.errors import DispatchError, Error, NotSentError
from teledispatch.producer.group_commit import Pending, ProducerClosed, StoreTimeout
from teledispatch.producer.lookup import JobNotFound
from teledispatch.producer.submit import IdempotencyConflict
from teledispatch.validation import Problem, ValidationFailed


def test_all_exported_members_exist_and_are_public() -> None:
    assert producer.__all__ == sorted(producer.__all__)
    for name in producer.__all__:
        assert not name.startswith("_"), name
        assert hasattr(producer, name), f"teledispatch.producer.{name} is in __all__ but missing"
    assert "Error" in producer.__all__ and producer.Error is teledispatch.Error


def test_the_root_is_exported_once() -> None:
    assert teledispatch.__all__ == ["Error"]
    assert teledispatch.Error is Error


@pytest.mark.parametrize(
    ("error", "builtin"),
    [
        (ValidationFailed([Problem(None, "account", "x", "is unknown")]), ValueError),
        (IdempotencyConflict("key reused"), ValueError),
        (ConfigError("bad"), ValueError),
        (JobNotFound("job-1"), LookupError),
        (ProducerClosed("closed"), RuntimeError),
        (StoreTimeout("slow"), TimeoutError),
        (DispatchError("boom"), Exception),
        (NotSentError("refused"), Exception),
    ],
    ids=lambda v: type(v).__name__,
)
def test_every_app_visible_error_has_the_root_and_keeps_its_builtin(
    error: Exception, builtin: type[Exception]
) -> None:
    assert isinstance(error, teledispatch.Error)
    assert isinstance(error, builtin)


def test_pending_result_timeout_is_a_teledispatch_error() -> None:
    pending = Pending("job-1", 1)
    with pytest.raises(teledispatch.Error) as info:
        pending.result(timeout=0)
    assert isinstance(info.value, TimeoutError)
    assert "job-1" in str(info.value)


def test_exported_exceptions_all_derive_from_the_root() -> None:
    exported = [getattr(producer, n) for n in producer.__all__]
    errors = [e for e in exported if isinstance(e, type) and issubclass(e, BaseException)]
    assert len(errors) >= 6
    assert all(issubclass(e, Error) for e in errors), errors
