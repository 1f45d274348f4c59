"""``/v1/messages``: messages to a phone number, or by the provider's message id."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from teledispatch.api.deps import State, require_key
from teledispatch.api.jobs import MAX_PAGE
from teledispatch.api.problems import query_problem
from teledispatch.api.schemas import INVALID, UNAUTHORIZED
from teledispatch.producer.lookup import MessageView, lookup

router = APIRouter(prefix="/v1", dependencies=[Depends(require_key)], responses=UNAUTHORIZED)


@router.get("/messages", response_model=list[MessageView], responses=INVALID)
def get_messages(
    state: State,
    phone: Annotated[str | None, Query(description="recipient, E.164 (+ optional)")] = None,
    provider_id: Annotated[str | None, Query(description="the provider's message id")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
) -> Any:
    if (phone is None) == (provider_id is None):
        return query_problem("phone", phone, "give exactly one of phone or provider_id")
    return lookup(phone=phone, provider_id=provider_id, limit=limit, cfg=state.cfg())
