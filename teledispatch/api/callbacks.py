"""Provider pushes (delivery receipts, call records), and keeping their secrets out of logs.

No API key here (providers cannot send one): each push is authenticated by the account's
``callback_token`` instead, and a refusal looks the same whether the account exists or not.
"""

from __future__ import annotations

import logging
import re
from typing import Annotated
from urllib.parse import parse_qsl

from fastapi import APIRouter, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, PlainTextResponse

from teledispatch.api.deps import State
from teledispatch.db.engine import get_engine
from teledispatch.receipts import (
    nxcloud_token_ok,
    parse_nxcloud_dr,
    parse_volc_records,
    settle,
    volc_verified,
)

log = logging.getLogger("teledispatch.api")

router = APIRouter(prefix="/v1/callbacks", include_in_schema=False)


@router.api_route("/nxcloud/{account}/{token}", methods=["POST", "GET"])
async def nxcloud_dr(state: State, account: str, token: str, request: Request) -> Response:
    cfg = state.cfg()
    if not nxcloud_token_ok(cfg.accounts.get(account), token):
        return JSONResponse(status_code=404, content={"detail": "Not Found"})
    fields = dict(request.query_params)  # older accounts: the DR in the query string
    body = await request.body()
    if body:
        fields.update(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
    dr = parse_nxcloud_dr(fields)
    if dr is not None:
        moved = await run_in_threadpool(
            settle, get_engine(cfg.database_url), account, dr.receipt, message_id=dr.message_id
        )
        log.debug("nxcloud DR for %s on %s: %d settled", dr.message_id, account, moved)
    # Always "success": NXCloud pushes once and a refusal would not make it resend.
    return PlainTextResponse("success")


@router.post("/volc/{account}")
async def volc_call_record(
    state: State,
    account: str,
    request: Request,
    timestamp: Annotated[str, Query()] = "",
    auth_code: Annotated[str, Query(alias="authCode")] = "",
) -> Response:
    cfg = state.cfg()
    body = await request.body()
    if not volc_verified(cfg.accounts.get(account), timestamp, auth_code, body):
        return JSONResponse(status_code=403, content={"detail": "Forbidden"})
    engine = get_engine(cfg.database_url)
    moved = 0
    for record in parse_volc_records(body):
        moved += await run_in_threadpool(
            settle, engine, account, record.receipt, provider_id=record.provider_id
        )
    return JSONResponse(content={"status": "ok", "settled": moved})


#: The NXCloud DR token sits in the URL path (NXCloud sends no header we could use) and a
#: Volcengine ``authCode`` in the query; access logs must not keep either.
_CALLBACK_SECRET = re.compile(r"(/v1/callbacks/nxcloud/[^/?\s]+/)[^/?\s]+|(authCode=)[^&\s]+")


class RedactCallbackSecrets(logging.Filter):
    """Rewrites uvicorn access-log lines: ``/v1/callbacks/nxcloud/acct/***``, ``authCode=***``."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                _CALLBACK_SECRET.sub(lambda mt: (mt.group(1) or mt.group(2)) + "***", a)
                if isinstance(a, str)
                else a
                for a in record.args
            )
        return True


def redact_access_log() -> None:
    """Install :class:`RedactCallbackSecrets` on uvicorn's access logger, once."""
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, RedactCallbackSecrets) for f in access.filters):
        access.addFilter(RedactCallbackSecrets())
