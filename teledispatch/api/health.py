"""Probes for the orchestrator: ``/livez`` (the process answers), ``/readyz`` (and its database)."""

from __future__ import annotations

import logging

import sqlalchemy as sa
from fastapi import APIRouter
from fastapi.responses import JSONResponse

from teledispatch.api.deps import State
from teledispatch.db.engine import get_engine

log = logging.getLogger("teledispatch.api")

router = APIRouter(include_in_schema=False)


@router.get("/livez")
def livez() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
def readyz(state: State) -> JSONResponse:
    try:
        with get_engine(state.cfg().database_url).connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except Exception as exc:  # readiness reports, it does not raise
        log.warning("database not reachable: %s", type(exc).__name__)
        return JSONResponse(status_code=503, content={"status": "database unreachable"})
    return JSONResponse(content={"status": "ok"})
