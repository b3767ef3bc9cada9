"""CSRF: every POST carries the session's token (form field or X-CSRF-Token header), else 403.

A synchronizer token kept in the signed session, checked here for every unsafe request before any route
runs, so no route can forget it. The body is read (bounded) and replayed to the route.
"""

from __future__ import annotations

import hmac
import secrets

from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

FIELD = "csrf_token"
HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# POSTs without a session, proven by a signed single-use token in their path instead (an expert's one-click
# answer, routes/referral_answers.py): there is no session token to compare with.
TOKEN_PROVEN_PATHS = ("/referrals/answer/",)
MAX_BODY_BYTES = 1024 * 1024  # a reply or a note; attachments are never uploaded through a form


def token(request: Request) -> str:
    """The session's token, made on first use."""
    value = request.session.get(FIELD)
    if not isinstance(value, str) or len(value) < 32:
        value = secrets.token_urlsafe(32)
        request.session[FIELD] = value
    return value


class CsrfProtection:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] in SAFE_METHODS
            or str(scope["path"]).startswith(TOKEN_PROVEN_PATHS)
        ):
            await self.app(scope, receive, send)
            return
        body = bytearray()
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > MAX_BODY_BYTES:
                await PlainTextResponse("Request too large.", status_code=413)(scope, receive, send)
                return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": bytes(body), "more_body": False}
            return await receive()

        request = Request(scope, replay)
        expected = request.session.get(FIELD)
        sent = request.headers.get(HEADER)
        if sent is None:
            form = await request.form()
            value = form.get(FIELD)
            sent = value if isinstance(value, str) else None
            await form.close()
        if not (isinstance(expected, str) and sent and hmac.compare_digest(expected, sent)):
            response = PlainTextResponse(
                "This form has expired or did not come from the help desk. Go back, reload the page and "
                "send it again.",
                status_code=403,
            )
            await response(scope, receive, send)
            return
        replayed = False
        await self.app(scope, replay, send)
