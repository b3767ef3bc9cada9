"""Signed session cookies whose key may live in the database.

The cookie (Starlette's SessionMiddleware, itsdangerous-signed) holds only the account id and its session
version, the CSRF token and the chosen language; the account and its role are reloaded on every request
(``access.py``). The key is HELPDESK_WEB_SECRET_KEY, or else a random key the desk generated once and
keeps in its database, so every process of one desk signs alike and a restart signs nobody out. It is known
only once the database is open (the app's lifespan), hence the middleware is built on the first request.
"""

from __future__ import annotations

from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from helpdesk.usecases.staff_accounts import Staff

COOKIE = "helpdesk_session"
MAX_AGE_SECONDS = 12 * 60 * 60  # a working day; then sign in again
STAFF_KEY = "staff"


class DeskSessions:
    def __init__(self, app: ASGIApp, *, https_only: bool) -> None:
        self.app = app
        self.https_only = https_only
        self._inner: SessionMiddleware | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        if self._inner is None:
            self._inner = SessionMiddleware(
                self.app,
                secret_key=scope["app"].state.session_key,
                session_cookie=COOKIE,
                max_age=MAX_AGE_SECONDS,
                same_site="lax",
                https_only=self.https_only,
            )
        await self._inner(scope, receive, send)


def begin(request: Request, staff: Staff) -> None:
    """Sign ``staff`` in: a fresh session (nothing of the anonymous one is kept but the language)."""
    language = request.session.get("lang")
    request.session.clear()
    request.session[STAFF_KEY] = [staff.id, staff.session_version]
    if language:
        request.session["lang"] = language


def end(request: Request) -> None:
    language = request.session.get("lang")
    request.session.clear()
    if language:
        request.session["lang"] = language


def signed_in_as(request: Request) -> tuple[int, int] | None:
    """The (account id, session version) the cookie names, if it is well-formed."""
    value = request.session.get(STAFF_KEY)
    if (
        isinstance(value, list)
        and len(value) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    ):
        return value[0], value[1]
    return None
