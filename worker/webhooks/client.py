"""The webhook HTTP client: no redirects, bounded time, a response body read only up to a
small limit (a receiver's answer is never more than a status for us)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import httpx

USER_AGENT = "teledispatch-webhooks/1"


@dataclass(frozen=True, slots=True)
class Answer:
    """What came back: a status (0: no answer at all) and the reason for a failure."""

    status: int
    retry_after: str | None = None
    error: str = ""

    @property
    def delivered(self) -> bool:
        return 200 <= self.status < 300

    @property
    def retryable(self) -> bool:
        """5xx, 429, timeouts and connection errors; any other answer will not change."""
        return self.status == 0 or self.status == 429 or self.status >= 500


Post = Callable[[str, bytes, dict[str, str]], Answer]


class Client:
    """One connection pool per process; each call is one POST."""

    def __init__(self, timeout_s: float, max_response_bytes: int) -> None:
        self.max_response_bytes = max_response_bytes
        self._http = httpx.Client(
            timeout=httpx.Timeout(timeout_s),
            follow_redirects=False,  # a redirect is an answer (not 2xx), never followed
            headers={"User-Agent": USER_AGENT},
        )

    def post(self, url: str, body: bytes, headers: dict[str, str]) -> Answer:
        try:
            with self._http.stream("POST", url, content=body, headers=headers) as response:
                self._drain(response)
                return Answer(response.status_code, response.headers.get("Retry-After"))
        except httpx.TimeoutException:
            return Answer(0, None, "timeout")
        except httpx.HTTPError as exc:
            # The exception's text may hold the URL (and a token in its query): the class only.
            return Answer(0, None, f"connection error: {type(exc).__name__}")

    def _drain(self, response: httpx.Response) -> None:
        read = 0
        for chunk in response.iter_raw():
            read += len(chunk)
            if read >= self.max_response_bytes:
                break  # closing the stream drops the connection with the rest unread

    def close(self) -> None:
        self._http.close()


_shared: dict[tuple[float, int], Client] = {}


def shared(timeout_s: float, max_response_bytes: int) -> Client:
    """This process's client (created on first use, after any fork)."""
    key = (timeout_s, max_response_bytes)
    if key not in _shared:
        _shared[key] = Client(timeout_s, max_response_bytes)
    return _shared[key]


__all__ = ["Answer", "Client", "Post", "shared"]
