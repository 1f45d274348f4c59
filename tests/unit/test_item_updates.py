"""How the provider's per-item answers become outcomes."""

from __future__ import annotations

from producer.store import FAILED, SENT
from worker.dispatch import item_updates
from worker.providers.base import ItemOutcome

from ..conftest import make_settings

ACCOUNT = make_settings("sqlite://").account("nx")


def _duplicate(message_id: str) -> ItemOutcome:
    return ItemOutcome(
        message_id,
        "failed",
        "task:13900139000",
        "REDUPLICATED_ITEM",
        "重复项目",
        already_present=True,
    )


def test_already_present_after_an_earlier_attempt_is_sent() -> None:
    """A resend after a lost answer finds the item in the task: the lost attempt got through."""
    (update,) = item_updates(ACCOUNT, [_duplicate("m1")], {"m1": 2})
    assert update.status == SENT and update.provider_id == "task:13900139000"
    assert update.error_code == "REDUPLICATED_ITEM"
    assert update.error_text == "重复项目 (accepted by an earlier attempt)"


def test_already_present_on_a_first_attempt_is_a_failure() -> None:
    """Nothing of ours went before: another job appended the number; ours was refused."""
    (update,) = item_updates(ACCOUNT, [_duplicate("m1")], {"m1": 1})
    assert update.status == FAILED and update.error_code == "REDUPLICATED_ITEM"


def test_other_failures_stay_failures_whatever_the_attempt() -> None:
    item = ItemOutcome("m1", "failed", None, "INVALID_PHONE_FORMAT", "号码格式错误")
    (update,) = item_updates(ACCOUNT, [item], {"m1": 3})
    assert update.status == FAILED and update.provider_id is None
