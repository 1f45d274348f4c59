"""``/v1/optouts``: the suppression lists over HTTP, as ``teledispatch optout`` works them.

A key works on the lists of the accounts it may use; the global list (no ``account``) only
with a key that has no account scope, since it silences every account's sends.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from teledispatch.api.auth import ApiKey
from teledispatch.api.deps import Key, State, require_key
from teledispatch.api.problems import problem_out, unprocessable
from teledispatch.api.schemas import BODY_REFUSED, INVALID, UNAUTHORIZED
from teledispatch.config import ConfigError
from teledispatch.producer import optouts
from teledispatch.validation import Problem, ValidationFailed

MAX_PAGE = 1000
#: Numbers per add or remove request (a bigger list goes by ``teledispatch optout import``).
MAX_PHONES = 10_000

router = APIRouter(
    prefix="/v1/optouts", dependencies=[Depends(require_key)], responses={**UNAUTHORIZED, **INVALID}
)


class OptOutChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    phones: list[str] = Field(min_length=1, max_length=MAX_PHONES)
    #: The account's list; absent: the global list (a key without account scope only).
    account: str | None = Field(default=None, min_length=1, max_length=100)


class OptOutEntryOut(BaseModel):
    phone: str
    created_at: float


class OptOutPage(BaseModel):
    account: str | None
    phones: list[OptOutEntryOut]
    next_cursor: str | None


class OptOutCount(BaseModel):
    account: str | None
    changed: int = Field(description="numbers added (or removed) that were not (or were) there")
    given: int


def _refused(key: ApiKey, account: str | None) -> JSONResponse | None:
    """Why this key may not touch that list, or None."""
    if account is None:
        if key.accounts is not None:
            return JSONResponse(
                status_code=403,
                content={"detail": "the global list needs a key without an account scope"},
            )
        return None
    if not key.may_use(account):
        refusal = Problem(None, "account", account, "is not an account this API key may use")
        return unprocessable([problem_out(refusal)])
    return None


def _change(state: State, key: ApiKey, body: OptOutChange, remove: bool) -> Any:
    refused = _refused(key, body.account)
    if refused is not None:
        return refused
    run = optouts.remove if remove else optouts.add
    try:
        n = run(body.phones, body.account, cfg=state.cfg())
    except ValidationFailed as exc:
        return unprocessable([problem_out(p) for p in exc.problems], exc.total)
    except ConfigError:
        refusal = Problem(None, "account", body.account, "is not a configured account")
        return unprocessable([problem_out(refusal)])
    return OptOutCount(account=body.account, changed=n, given=len(body.phones))


@router.post("", response_model=OptOutCount, responses=BODY_REFUSED)
def post_optouts(state: State, key: Key, body: OptOutChange) -> Any:
    """Opt numbers out: their messages not yet sent are never sent."""
    return _change(state, key, body, remove=False)


@router.post("/remove", response_model=OptOutCount, responses=BODY_REFUSED)
def post_optouts_remove(state: State, key: Key, body: OptOutChange) -> Any:
    """Take numbers off the list."""
    return _change(state, key, body, remove=True)


@router.get("", response_model=OptOutPage)
def get_optouts(
    state: State,
    key: Key,
    account: Annotated[str | None, Query(description="absent: the global list")] = None,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
) -> Any:
    refused = _refused(key, account)
    if refused is not None:
        return refused
    try:
        page = optouts.entries(account, after=cursor or "", limit=limit, cfg=state.cfg())
    except ConfigError:
        refusal = Problem(None, "account", account, "is not a configured account")
        return unprocessable([problem_out(refusal)])
    return OptOutPage(
        account=account,
        phones=[OptOutEntryOut(phone=e.phone, created_at=e.created_at) for e in page],
        next_cursor=page[-1].phone if len(page) == limit else None,
    )
