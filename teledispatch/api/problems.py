"""Every refusal of input as one 422 shape, whether pydantic or the job's rules found it.

A client reads ``detail[].loc``/``field``/``rule`` the same way for a malformed body, a bad
query parameter and a recipient the channel's rules refused.
"""

from __future__ import annotations

from typing import Any

from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse

from teledispatch.api.schemas import ProblemOut, ValidationError422
from teledispatch.validation import Problem


def _json_safe(value: Any) -> Any:
    try:
        return jsonable_encoder(value)
    except (TypeError, ValueError):
        return repr(value)


def problem_out(p: Problem) -> ProblemOut:
    """A problem the job's rules found."""
    if p.index is not None:
        loc: list[str | int] = ["body", "recipients", p.index, *p.field.split(".")]
    else:
        loc = ["body", *p.field.split(".")]
    return ProblemOut(
        loc=loc,
        index=p.index,
        field=p.field,
        value=_json_safe(p.value),
        rule=p.rule,
        msg=str(p),
    )


def from_pydantic(err: dict[str, Any]) -> ProblemOut:
    """A problem pydantic found in the request before any route ran."""
    loc: list[str | int] = [p if isinstance(p, int) else str(p) for p in err.get("loc", ())]
    rest = loc[1:] if loc and loc[0] in ("body", "query", "path", "header") else loc
    index: int | None = None
    if len(rest) >= 2 and rest[0] == "recipients" and isinstance(rest[1], int):
        index = rest[1]
        rest = rest[2:]
    field = ".".join(str(p) for p in rest) or (str(loc[0]) if loc else "body")
    # A missing field's "input" is the whole enclosing object: not worth echoing back.
    value = None if err.get("type") == "missing" else _json_safe(err.get("input"))
    rule = str(err.get("msg", "invalid"))
    where = f"recipients[{index}].{field}" if index is not None else field
    return ProblemOut(
        loc=loc, index=index, field=field, value=value, rule=rule, msg=f"{where}: {rule}"
    )


def unprocessable(problems: list[ProblemOut], total: int | None = None) -> JSONResponse:
    body = ValidationError422(detail=problems, total=len(problems) if total is None else total)
    return JSONResponse(status_code=422, content=jsonable_encoder(body))


def query_problem(field: str, value: Any, rule: str) -> JSONResponse:
    return unprocessable(
        [
            ProblemOut(
                loc=["query", field],
                index=None,
                field=field,
                value=value,
                rule=rule,
                msg=f"{field}: {rule}",
            )
        ]
    )
