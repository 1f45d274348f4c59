"""``/v1/messages``: messages to a phone number, or by the provider's message id."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from teledispatch.api.deps import Key, State, require_key
from teledispatch.api.jobs import MAX_PAGE
from teledispatch.api.problems import problem_out, query_problem, unprocessable
from teledispatch.api.schemas import INVALID, UNAUTHORIZED, ProblemOut
from teledispatch.producer.lookup import MessageView, lookup
from teledispatch.validation import ValidationFailed

router = APIRouter(prefix="/v1", dependencies=[Depends(require_key)], responses=UNAUTHORIZED)


@router.get(
    "/messages",
    response_model=list[MessageView],
    responses=INVALID,
    operation_id="get_messages",
    description="Give exactly one of `phone` or `provider_id` (neither or both: 422). A phone "
    "without its country code (`13800138000`) is a 422 saying so.",
)
def get_messages(
    state: State,
    key: Key,
    phone: Annotated[str | None, Query(description="recipient, E.164 (+ optional)")] = None,
    provider_id: Annotated[str | None, Query(description="the provider's message id")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
) -> Any:
    if (phone is None) == (provider_id is None):
        return query_problem("phone", phone, "give exactly one of phone or provider_id")
    try:
        found = lookup(phone=phone, provider_id=provider_id, limit=limit, cfg=state.cfg())
    except ValidationFailed as exc:
        return unprocessable([_query_loc(problem_out(p)) for p in exc.problems], exc.total)
    # Only messages on the key's accounts: another tenant's recipients stay invisible.
    return [m for m in found if key.may_see(m.account, m.route)]


def _query_loc(problem: ProblemOut) -> ProblemOut:
    """The lookup's problems name a query parameter, not a body field."""
    return problem.model_copy(update={"loc": ["query", problem.field]})
