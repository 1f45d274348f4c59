"""What every route depends on: the app's state (settings, key ring, producer) and the key check.

The state hangs on ``app.state`` rather than in closures, so the routers are plain
module-level ``APIRouter`` objects and each app built by ``create_app`` keeps its own.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.engine import Engine

from teledispatch.api.auth import ApiKey, KeyRing, load_keys
from teledispatch.api.ratelimit import Limiter, Rate, RateLimited, Unlimited
from teledispatch.config import ConfigError, Settings, load_settings
from teledispatch.db.engine import get_engine
from teledispatch.db.migrate import ensure_schema
from teledispatch.producer.group_commit import Producer

log = logging.getLogger("teledispatch.api")


class ApiState:
    def __init__(
        self,
        get_cfg: Callable[[], Settings],
        ring: KeyRing,
        *,
        reload_keys: bool = False,
        limiter: Limiter | None = None,
    ) -> None:
        self.get_cfg = get_cfg
        self._ring = ring
        self.limiter: Limiter = limiter or Unlimited()
        #: Keys are re-read when the config file changes (adding or revoking one needs no
        #: restart); not when the app was given its keys (tests, embedding).
        self._reload = reload_keys
        self._stamp = self._file_stamp()
        self._producer: Producer | None = None
        self._lock = threading.Lock()

    def _file_stamp(self) -> tuple[int, int] | None:
        try:
            st = os.stat(self.get_cfg().source)
        except OSError:
            return None
        return st.st_mtime_ns, st.st_size

    @property
    def ring(self) -> KeyRing:
        if self._reload:
            stamp = self._file_stamp()
            if stamp != self._stamp:
                self._stamp = stamp
                self._reread(self.get_cfg().source)
        return self._ring

    def _reread(self, source: str) -> None:
        try:
            self._ring = KeyRing(load_keys(load_settings(Path(source))))
        except ConfigError as exc:  # a half-edited file must not lock every client out
            log.error("API keys not reloaded, keeping the previous ones: %s", exc)
            return
        log.info("API keys reloaded from %s: %d keys", source, len(self._ring))

    def cfg(self) -> Settings:
        return self.get_cfg()

    def engine(self) -> Engine:
        """The configured database, migrated to head on first use (as the producer's reads
        do): a read before the first job finds empty tables, not missing ones."""
        url = self.get_cfg().database_url
        ensure_schema(url)
        return get_engine(url)

    def rate_of(self, key: ApiKey) -> Rate:
        cfg = self.get_cfg()
        per_s = cfg.api_rate_per_s if key.rate_per_s is None else key.rate_per_s
        return Rate(per_s, cfg.api_burst if key.burst is None else key.burst)

    def producer(self) -> Producer:
        # Created on first use, in the serving process (never inherited across a fork). No
        # linger: a lone request is stored at once, and requests that arrive while a commit
        # is under way share the next one (group commit), so throughput grows with load.
        with self._lock:
            if self._producer is None:
                self._producer = Producer(self.get_cfg(), linger_ms=0)
            return self._producer


def api_state(request: Request) -> ApiState:
    state: ApiState = request.app.state.teledispatch
    return state


State = Annotated[ApiState, Depends(api_state)]


class Unauthorized(Exception):
    """No key, or one the ring does not accept; answered 401 by the app's handler."""


_bearer = HTTPBearer(auto_error=False, description="Authorization: Bearer <API key>")
_header_key = APIKeyHeader(name="X-API-Key", auto_error=False, description="X-API-Key: <API key>")


def require_key(
    state: State,
    request: Request,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    header_key: Annotated[str | None, Depends(_header_key)],
) -> ApiKey:
    presented = bearer.credentials if bearer is not None else header_key
    key = state.ring.match(presented) if presented else None
    if key is None:
        raise Unauthorized
    wait = state.limiter.admit(key.name, state.rate_of(key))
    if wait > 0:
        log.info("%s %s by key %s: over its rate", request.method, request.url.path, key.name)
        raise RateLimited(wait)
    # Every authenticated request is attributable by the key's name (never the key).
    log.info("%s %s by key %s", request.method, request.url.path, key.name)
    return key


Key = Annotated[ApiKey, Depends(require_key)]
