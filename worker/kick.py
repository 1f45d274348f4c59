"""Waking a dispatcher for an account, without flooding the broker.

Every accepted part, every sweep and every full batch wants a dispatcher to run. A short-lived
Redis key per account (``SET NX PX``) turns a burst of such wishes into one task; its lifetime
is the account's linger, so single-recipient jobs that arrive within it share one request.
"""

from __future__ import annotations

from producer.broker import channel_queue, dispatch_task
from producer.config import AccountConfig
from worker.context import Context


def kick_key(account: str) -> str:
    return f"td:kick:{account}"


def kick(ctx: Context, account: AccountConfig, *, delay_s: float | None = None) -> bool:
    """Schedule one dispatch of ``account`` unless one is already scheduled; True if it was."""
    delay = account.linger_ms / 1000 if delay_s is None else delay_s
    window_ms = max(int(delay * 1000), 50)
    if not ctx.redis.set(kick_key(account.name), b"1", nx=True, px=window_ms):
        return False
    ctx.publish(
        dispatch_task(account.channel), [account.name], channel_queue(account.channel), delay
    )
    return True


def follow_up(ctx: Context, account: AccountConfig) -> None:
    """A full batch suggests more is waiting: start the next claim now, in another process."""
    ctx.publish(dispatch_task(account.channel), [account.name], channel_queue(account.channel), 0)
