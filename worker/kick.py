"""Waking a dispatcher for an account from inside a worker (see :func:`producer.broker.kick`)."""

from __future__ import annotations

from producer import broker
from producer.config import AccountConfig
from worker.context import Context


def kick(ctx: Context, account: AccountConfig, *, delay_s: float | None = None) -> bool:
    return broker.kick(ctx.redis, ctx.publish, account, delay_s)


def follow_up(ctx: Context, account: AccountConfig) -> None:
    """A full batch suggests more is waiting: start the next claim now, in another process."""
    channel = account.channel
    ctx.publish(broker.dispatch_task(channel), [account.name], broker.channel_queue(channel), 0)
