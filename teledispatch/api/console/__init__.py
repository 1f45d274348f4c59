"""The operator console at ``/console``: one server-rendered page and a small script, both
shipped as package data (nothing is fetched from the Internet).

The page itself holds no data and needs no key: the script asks for an API key once, keeps
it in ``sessionStorage`` (gone when the tab closes, never in a cookie) and sends it as a
bearer token to the ``/v1`` JSON routes every other client uses, refreshing them in place.
A bearer header, unlike a cookie, is never attached by the browser to a request another site
makes, so the console's cancel and retry buttons need no CSRF defence, and a key's account
scope applies to the console exactly as to the API.
"""

from teledispatch.api.console.router import router

__all__ = ["router"]
