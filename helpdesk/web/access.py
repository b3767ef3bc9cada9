"""Who may open what: every page and action needs a signed-in, enabled account with the role it asks.

The rules are data, first match wins. A request without a valid session is sent to the login page (which
brings the staff member back afterwards) whatever it asks for, so a stranger learns nothing from
/tickets/<ref>: an existing and a made-up reference answer alike.
"""

from __future__ import annotations

from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from helpdesk.usecases.staff_accounts import session_staff
from helpdesk.web.sessions import end, signed_in_as

PUBLIC = "public"

# (path prefix, methods, least role); first match wins. Reading needs a session; changing anything needs
# an agent, unless a rule says otherwise.
ACCESS_RULES: tuple[tuple[str, frozenset[str] | None, str], ...] = (
    ("/healthz", None, PUBLIC),
    ("/static/", None, PUBLIC),
    ("/login", None, PUBLIC),
    # An expert's one-click answer: the signed single-use token is its proof (routes/referral_answers.py).
    ("/referrals/answer/", None, PUBLIC),
    ("/logout", None, "viewer"),
    # Knowledge base: everyone reads, admins change it. Admin pages: admins only. Reports: read-only.
    ("/kb", frozenset({"GET", "HEAD"}), "viewer"),
    ("/kb", None, "admin"),
    ("/admin", None, "admin"),
    ("/", frozenset({"GET", "HEAD"}), "viewer"),
    ("/", None, "agent"),
)


def needed_role(path: str, method: str) -> str:
    for prefix, methods, role in ACCESS_RULES:
        if path.startswith(prefix) and (methods is None or method in methods):
            return role
    return "admin"


class StaffAccess:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        role = needed_role(request.url.path, request.method)
        if role == PUBLIC:
            await self.app(scope, receive, send)
            return
        named = signed_in_as(request)
        staff = await session_staff(scope["app"].state.desk, *named) if named else None
        if staff is None:
            if named:
                end(request)  # password changed, account disabled or removed: this session is over
            await _to_login(request)(scope, receive, send)
            return
        if not staff.may(role):
            await PlainTextResponse("Your role may not do this.", status_code=403)(scope, receive, send)
            return
        scope.setdefault("state", {})["staff"] = staff
        await self.app(scope, receive, send)


def _to_login(request: Request) -> RedirectResponse:
    if request.method in ("GET", "HEAD"):
        wanted = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?{urlencode({'next': wanted})}", status_code=303)
    return RedirectResponse("/login", status_code=303)
