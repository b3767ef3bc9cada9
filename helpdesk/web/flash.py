"""One-time messages after a POST (what was done, or why not), carried to the page it redirects to."""

from __future__ import annotations

from starlette.requests import Request

KEY = "flash"
MAX_LENGTH = 500  # the cookie holds it until the next page


def say(request: Request, text: str, *, error: bool = False) -> None:
    request.session[KEY] = {"text": text[:MAX_LENGTH], "error": error}


def take(request: Request) -> dict[str, object] | None:
    value = request.session.pop(KEY, None)
    return value if isinstance(value, dict) else None
