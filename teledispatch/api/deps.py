"""What every route depends on: the app's state (settings, key ring, producer) and the key check.

The state hangs on ``app.state`` rather than in closures, so the routers are plain
module-level ``APIRouter`` objects and each app built by ``create_app`` keeps its own.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from teledispatch.api.auth import KeyRing
from teledispatch.config import Settings
from teledispatch.producer.group_commit import Producer


class ApiState:
    def __init__(self, get_cfg: Callable[[], Settings], ring: KeyRing) -> None:
        self.get_cfg = get_cfg
        self.ring = ring
        self._producer: Producer | None = None
        self._lock = threading.Lock()

    def cfg(self) -> Settings:
        return self.get_cfg()

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
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    header_key: Annotated[str | None, Depends(_header_key)],
) -> None:
    presented = bearer.credentials if bearer is not None else header_key
    if not presented or not state.ring.accepts(presented):
        raise Unauthorized
