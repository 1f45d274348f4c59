"""Waking a dispatcher for an account from inside a worker (see :func:`producer.broker.kick`)."""

from __future__ import annotations

from teledispatch import wakeups as broker
from teledispatch.config import AccountConfig
from teledispatch.worker.context import Context


def kick(ctx: Context, account: AccountConfig, *, delay_s: float | None = None) -> bool:
    return broker.kick(ctx.redis, ctx.publish, account, delay_s)


#: How long an unstarted follow-up keeps others from being published if its task never starts
#: (lost with a worker); the sweep wakes accounts with due messages every second meanwhile.
FOLLOW_PENDING_MS = 10_000


def follow_key(account: str) -> str:
    return f"td:follow:{account}"


def follow_up(ctx: Context, account: AccountConfig, *, once: bool = False) -> bool:
    """A full batch suggests more is waiting: start the next claim now, in another process.

    With ``once``, only if no follow-up of this account is already waiting to start (a
    short Redis key, cleared by :func:`follow_up_started`). A task that sends one claim
    publishes at most one follow-up and consumes one, so the queue stays short by itself; a
    task that keeps claiming publishes at its first claim and again when its time is up, and
    without this gate the queue would grow by one task per task for as long as a backlog
    lasted, each of them an empty claim at the end and a wait for other accounts' wake-ups.
    True if published."""
    if once and not ctx.redis.set(follow_key(account.name), b"1", nx=True, px=FOLLOW_PENDING_MS):
        return False
    channel = account.channel
    ctx.publish(broker.dispatch_task(channel), [account.name], broker.channel_queue(channel), 0)
    return True


def follow_up_started(ctx: Context, account: AccountConfig) -> None:
    """A dispatch of ``account`` is running: the next full claim may recruit another."""
    ctx.redis.delete(follow_key(account.name))
