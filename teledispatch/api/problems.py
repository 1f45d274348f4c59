"""Every refusal of input as one 422 shape, whether pydantic or the job's rules found it.

A client reads ``detail[].loc``/``field``/``rule`` the same way for a malformed body, a bad
query parameter and a recipient the channel's rules refused.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse

from teledispatch.api.schemas import ProblemOut, ValidationError422
from teledispatch.validation import Problem

#: The longest value (or rule text) an error quotes back: enough to recognise it, and a 60 MB
#: field is not echoed back whole.
MAX_QUOTED = 60


def _clip_text(text: str, limit: int = MAX_QUOTED) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def clip_value(value: Any) -> Any:
    """``value`` as JSON to quote in an error: short strings and scalars as they are, a long
    string or a big list/object as a prefix of its text."""
    try:
        safe = jsonable_encoder(value)
    except (TypeError, ValueError):
        return _clip_text(repr(value))
    if isinstance(safe, str):
        return _clip_text(safe)
    if isinstance(safe, list | dict):
        text = json.dumps(safe, ensure_ascii=False)
        return safe if len(text) <= MAX_QUOTED else _clip_text(text)
    return safe


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
        value=clip_value(p.value),
        rule=_clip_text(p.rule, 4 * MAX_QUOTED),
        msg=_clip_text(str(p), 4 * MAX_QUOTED),
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
    value = None if err.get("type") == "missing" else clip_value(err.get("input"))
    rule = _clip_text(str(err.get("msg", "invalid")), 4 * MAX_QUOTED)
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
                value=clip_value(value),
                rule=rule,
                msg=f"{field}: {rule}",
            )
        ]
    )
