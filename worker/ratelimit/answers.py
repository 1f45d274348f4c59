"""Answer times shared by every process of an account: what the adaptive margin is taken from.

Each request's write → answer time is pushed to one capped Redis list per account, in the
round trip that also reads the list back when this process's copy is older than
:data:`REFRESH_S`; the estimator (``margin``) then answers from every process's samples. The
push comes after the request's outcome is saved (``dispatch/send.py``), and the margin, a
decision on every request, is read from the local copy: no Redis call is added before a
request leaves or before its outcome is written.

Redis being away only loses the sharing: the sample is then kept locally, as before.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import redis

from .keys import AccountKeys
from .margin import MarginEstimator

log = logging.getLogger("teledispatch.ratelimit")

#: A process reads every process's samples again at most this often (seconds).
REFRESH_S = 1.0
#: Samples older than this are dropped with the list once nothing is sent for so long: a
#: provider that was quiet for an hour is measured again (the ceiling until then).
KEEP_S = 3600


class SharedAnswers:
    """Observe answer times into Redis and keep ``estimator`` fed with every process's."""

    def __init__(
        self,
        redis_client: redis.Redis[Any],
        estimator: MarginEstimator,
        *,
        key_prefix: str,
        refresh_s: float = REFRESH_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._redis = redis_client
        self._estimator = estimator
        self._key_prefix = key_prefix
        self._refresh_s = refresh_s
        self._clock = clock
        self._read_at: dict[str, float] = {}

    def observe(self, account: str, seconds: float) -> None:
        """One request's write → answer time. Never raises: the send is already over."""
        if not seconds >= 0:
            return
        key = AccountKeys.of(self._key_prefix, account).answers
        now = self._clock()
        read = now - self._read_at.get(account, -float("inf")) >= self._refresh_s
        window = self._estimator.window
        try:
            pipe = self._redis.pipeline(transaction=False)
            pipe.rpush(key, f"{seconds:.6f}")
            pipe.ltrim(key, -window, -1)
            pipe.expire(key, KEEP_S)
            if read:
                pipe.lrange(key, 0, -1)
            replies = pipe.execute()
        except redis.RedisError as exc:
            log.debug("answer time kept locally (%s)", type(exc).__name__)
            self._estimator.observe(account, seconds)
            return
        if not read:
            self._estimator.observe(account, seconds)
            return
        self._read_at[account] = now
        self._estimator.replace(account, _floats(replies[-1]))


def _floats(raw: list[bytes | str]) -> list[float]:
    """The list's values that parse as times (anything else written there is skipped)."""
    values: list[float] = []
    for item in raw:
        try:
            values.append(float(item))
        except (TypeError, ValueError):
            continue
    return values
