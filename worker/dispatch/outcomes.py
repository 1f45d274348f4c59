"""What an answer (or an error) makes of each message: pure decisions, no I/O, no clock.

The time comes in as ``now``; only the backoff's jitter is drawn here, unless given.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from teledispatch.channels.base import ItemOutcome
from teledispatch.config import AccountConfig
from teledispatch.db.messages import RECONCILE_AFTER_S, Update
from teledispatch.errors import DispatchError


def backoff(
    account: AccountConfig,
    attempts: int,
    retry_after: float | None = None,
    jitter: float | None = None,
) -> float:
    """Exponential backoff with jitter: ``base·2^(n-1)``, capped, drawn from its upper half.

    Half-jitter keeps retries of one failed batch from arriving together, while never
    retrying sooner than half the nominal delay; a provider's ``Retry-After`` wins if longer.
    """
    nominal = min(account.backoff_max_s, account.backoff_base_s * 2.0 ** max(attempts - 1, 0))
    delay = nominal * (0.5 + (random.random() if jitter is None else jitter) / 2)
    return max(delay, retry_after or 0.0)


def batch_failure(
    account: AccountConfig,
    ids: Sequence[str],
    attempts: dict[str, int],
    exc: DispatchError,
    now: float,
) -> list[Update]:
    """One error covers every message of the request."""
    code, text = exc.code or type(exc).__name__, exc.message
    if exc.may_have_been_sent:
        return [ambiguous(account, i, attempts[i], code, text, now) for i in ids]
    if exc.throttled:
        delay = max(exc.retry_after or 0.0, 1.0)
        return [Update.requeue(i, now + delay, code, text) for i in ids]
    if exc.deferred:
        due = now + max(exc.retry_after or 0.0, 1.0)
        return [Update.deferred(i, due, code, text) for i in ids]
    if exc.retryable:
        # One draw per batch: its messages retry together (and are written by one statement);
        # batches still spread out from each other.
        jitter = random.random()
        return [
            retry(account, i, attempts[i], code, text, now, exc.retry_after, jitter) for i in ids
        ]
    return [Update.failed(i, code, text) for i in ids]


def paused(
    account: AccountConfig,
    ids: Sequence[str],
    attempts: dict[str, int],
    exc: DispatchError,
    now: float,
) -> list[Update]:
    """The failure met an open circuit: nothing is spent on it (due at once: the circuit, not
    the due time, holds them back), unless the request may have been acted on."""
    if exc.may_have_been_sent:
        return batch_failure(account, ids, attempts, exc, now)
    code = exc.code or type(exc).__name__
    return [Update.requeue(i, now, code, f"{exc.message} (provider paused)") for i in ids]


def retry(
    account: AccountConfig,
    message_id: str,
    attempts: int,
    code: str,
    text: str,
    now: float,
    retry_after: float | None = None,
    jitter: float | None = None,
) -> Update:
    """Another attempt after the backoff, or ``failed`` once the attempts are spent."""
    if attempts >= account.max_attempts:
        return Update.failed(message_id, code, f"{text} (after {attempts} attempts)")
    due = now + backoff(account, attempts, retry_after, jitter)
    return Update.retry(message_id, due, code, text)


def ambiguous(
    account: AccountConfig, message_id: str, attempts: int, code: str, text: str, now: float
) -> Update:
    """The request may have reached the provider: the account's policy decides."""
    if account.on_ambiguous == "resend":
        return retry(account, message_id, attempts, code, text, now)
    if account.on_ambiguous == "fail":
        return Update.failed(message_id, code, f"{text} (may have been sent)")
    return Update.unknown(message_id, now + RECONCILE_AFTER_S, code, text)


def item_updates(
    account: AccountConfig, items: Sequence[ItemOutcome], attempts: dict[str, int], now: float
) -> list[Update]:
    """The provider's answer per message; a message it did not mention may have been sent."""
    updates: list[Update] = []
    answered: set[str] = set()
    for item in items:
        if item.message_id not in attempts or item.message_id in answered:
            continue  # not in this batch, or answered twice: the first answer stands
        answered.add(item.message_id)
        updates.append(_item_update(account, item, attempts[item.message_id], now))
    for message_id, n in attempts.items():
        if message_id not in answered:
            text = "the provider's answer did not mention this message"
            updates.append(ambiguous(account, message_id, n, "missing", text, now))
    return updates


def _item_update(account: AccountConfig, item: ItemOutcome, attempts: int, now: float) -> Update:
    code, text = item.error_code or item.status, item.error_text or ""
    if item.status == "sent":
        return Update.sent(item.message_id, item.provider_id)
    if item.status == "failed":
        return Update.failed(item.message_id, code, text)
    if item.status == "deferred":
        return Update.deferred(item.message_id, now + (item.retry_in or 60.0), code, text)
    if item.status == "retry":
        return retry(account, item.message_id, attempts, code, text, now)
    return ambiguous(account, item.message_id, attempts, code, text, now)
