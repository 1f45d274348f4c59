"""``GET /console`` (the page) and ``GET /console/static/{name}`` (its script and style)."""

from __future__ import annotations

from functools import lru_cache
from importlib.resources import files
from string import Template

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, Response

from teledispatch.priorities import PRIORITIES
from teledispatch.statuses import STATUSES

router = APIRouter(include_in_schema=False)

#: The page runs only its own script and style and talks only to this server.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
STATIC = {"console.js": "text/javascript", "console.css": "text/css"}
#: How often the page refreshes what it shows, in milliseconds.
REFRESH_MS = 3000


def _resource(*parts: str) -> str:
    return files(__package__).joinpath(*parts).read_text(encoding="utf-8")


def _options(values: list[str]) -> str:
    # Values are this module's own words (statuses, priorities): nothing to escape.
    return "".join(f'<option value="{v}">{v}</option>' for v in values)


@lru_cache(maxsize=1)
def render_page() -> str:
    return Template(_resource("templates", "console.html")).substitute(
        priorities=_options(list(PRIORITIES)),
        statuses=_options([str(s) for s in STATUSES]),
        refresh_ms=REFRESH_MS,
    )


@router.get("/console", response_class=HTMLResponse)
def console_page() -> HTMLResponse:
    return HTMLResponse(render_page(), headers=HEADERS)


@router.get("/console/static/{name}")
def console_static(name: str) -> Response:
    media = STATIC.get(name)
    if media is None:
        return Response(status_code=404)
    return Response(
        _resource("static", name),
        media_type=media,
        headers={**HEADERS, "Cache-Control": "no-cache"},
    )
