"""When a failed webhook request is tried again, and when its events are given up on."""

from __future__ import annotations

from email.utils import parsedate_to_datetime

from teledispatch.config import WebhookSettings


def backoff_s(attempts: int, cfg: WebhookSettings) -> float:
    """The delay after the ``attempts``-th failed attempt (1, 2, …): ``base * 2**(n-1)``,
    at most ``max_backoff_s``."""
    exponent = max(attempts - 1, 0)
    if exponent > 60:  # 2**61 s is past any maximum; avoid float overflow
        return cfg.max_backoff_s
    return float(min(cfg.backoff_base_s * 2**exponent, cfg.max_backoff_s))


def retry_after_s(value: str | None, now: float) -> float | None:
    """A ``Retry-After`` header (seconds or an HTTP date) as seconds from ``now``."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None
    return max(when - now, 0.0)


def next_attempt(
    *,
    now: float,
    attempts: int,
    first_failed_at: float | None,
    retry_after: float | None,
    cfg: WebhookSettings,
) -> tuple[float, bool]:
    """``(when to try again, dead)`` after a failed attempt (``attempts`` counts it).

    The server's ``Retry-After`` is honoured when it asks for longer than our backoff; an
    event still failing ``retry_window_s`` after its first failure is dead-lettered, as is
    one whose next attempt would fall past the window.
    """
    start = now if first_failed_at is None else first_failed_at
    delay = backoff_s(attempts, cfg)
    if retry_after is not None:
        delay = max(delay, retry_after)
    at = now + delay
    return at, at - start > cfg.retry_window_s


__all__ = ["backoff_s", "next_attempt", "retry_after_s"]
