"""Checks on the raw request before any route parses it: size, encoding, NUL characters.

An ASGI middleware rather than per-route code, so that no route can forget them:

- a body over ``[api] max_body_bytes`` is a 413, refused by its ``Content-Length`` or as soon as
  the bytes read pass the limit, so a 60 MB body is never held nor parsed (a job that big goes
  through ``enqueue_stream`` or ``teledispatch send``);
- a JSON body that is not UTF-8 is a 400 (JSON is UTF-8 by RFC 8259; FastAPI alone would answer
  a misleading "JSON decode error");
- a NUL character in the path, a query parameter or a JSON/form string is a 422 naming where:
  PostgreSQL cannot store or even compare a text value holding one, so it would reach the
  database as a 500.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl

from fastapi.encoders import jsonable_encoder
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from teledispatch.api.problems import clip_value
from teledispatch.api.schemas import ProblemOut, ValidationError422
from teledispatch.config import DEFAULT_MAX_BODY_BYTES

NUL_RULE = "must not contain a NUL character"
#: A ``\u0000`` escape in JSON text that is not itself an escaped backslash followed by "u0000".
_JSON_NUL = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")


class BodyTooLarge(Exception):
    pass


def _nul_paths(value: Any, path: tuple[str | int, ...] = ()) -> Iterator[tuple[str | int, ...]]:
    """Where in a parsed JSON document a string (or an object key) holds a NUL."""
    if isinstance(value, str):
        if "\x00" in value:
            yield path
    elif isinstance(value, dict):
        for k, v in value.items():
            if "\x00" in k:
                yield (*path, k)
            yield from _nul_paths(v, (*path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _nul_paths(v, (*path, i))


def _at(doc: Any, path: tuple[str | int, ...]) -> Any:
    for p in path:
        doc = doc[p]
    return doc


def _problem(where: str, loc: list[str | int], value: Any) -> ProblemOut:
    field = ".".join(str(p) for p in loc[1:]) or where
    return ProblemOut(
        loc=loc, index=None, field=field, value=clip_value(value), rule=NUL_RULE,
        msg=f"{field}: {NUL_RULE}",
    )  # fmt: skip


def _reply(status: int, body: Any) -> JSONResponse:
    return JSONResponse(status_code=status, content=jsonable_encoder(body))


def _query_problems(scope: Scope) -> list[ProblemOut]:
    problems: list[ProblemOut] = []
    if "\x00" in scope.get("path", ""):
        problems.append(_problem("path", ["path"], scope["path"]))
    query = scope.get("query_string", b"").decode("latin-1")
    for name, value in parse_qsl(query, keep_blank_values=True):
        if "\x00" in name or "\x00" in value:
            problems.append(_problem(name, ["query", name], value))
    return problems


def _body_problems(content_type: str, body: bytes) -> tuple[int, Any] | None:
    """The refusal of ``body`` (status, JSON), or None when it may go on to the route."""
    if "form-urlencoded" in content_type:
        fields = parse_qsl(body.decode("latin-1"), keep_blank_values=True)
        bad = [_problem(k, ["body", k], v) for k, v in fields if "\x00" in k + v]
        return (422, ValidationError422(detail=bad, total=len(bad))) if bad else None
    if content_type and "json" not in content_type:
        return None
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        return 400, {"detail": f"request body is not UTF-8 (invalid byte at offset {exc.start})"}
    if not _JSON_NUL.search(text):
        return None
    try:
        doc = json.loads(text)
    except ValueError:
        return None  # not JSON at all: the route's parser says so
    paths = list(_nul_paths(doc))
    found = [_problem("body", ["body", *p], _at(doc, p) if p else doc) for p in paths]
    return (422, ValidationError422(detail=found, total=len(found))) if found else None


class RequestGuard:
    """The checks above, as ASGI middleware around the whole app."""

    def __init__(
        self,
        app: ASGIApp,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        streamed_paths: frozenset[str] = frozenset(),
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        #: Routes that read their own body as it arrives (a CSV upload) and bound it themselves.
        self.streamed_paths = streamed_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        problems = _query_problems(scope)
        if problems:
            body422 = ValidationError422(detail=problems, total=len(problems))
            await _reply(422, body422)(scope, receive, send)
            return
        if scope.get("path") in self.streamed_paths:
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        try:
            body = await self._read(headers, receive)
        except BodyTooLarge:
            detail = (
                f"request body over {self.max_body_bytes} bytes ([api] max_body_bytes); "
                "split the job, or upload it as CSV to POST /v1/jobs/csv"
            )
            await _reply(413, {"detail": detail})(scope, receive, send)
            return
        refused = _body_problems(headers.get("content-type", "").lower(), body) if body else None
        if refused is not None:
            await _reply(*refused)(scope, receive, send)
            return
        await self.app(scope, _replay(body, receive), send)

    async def _read(self, headers: dict[str, str], receive: Receive) -> bytes:
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_body_bytes:
            raise BodyTooLarge
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                raise BodyTooLarge
            chunks.append(chunk)
            more = message.get("more_body", False)
        return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that hands the app the body already read, then defers to the real one
    (for the disconnect message)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
