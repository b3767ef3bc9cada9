"""Signing in and out."""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from helpdesk.usecases.staff_accounts import sign_in
from helpdesk.web import sessions
from helpdesk.web.i18n import gettext as _
from helpdesk.web.templating import page

log = logging.getLogger(__name__)

MAX_EMAIL = 320


def safe_next(value: str | None) -> str:
    """Where to go after signing in: a path of this site only (never //host, /\\host or a scheme)."""
    if (
        not value
        or not value.startswith("/")
        or value.startswith(("//", "/\\"))
        or any(c in value for c in "\\\r\n\t")
        or any(ord(c) < 32 for c in value)
        or len(value) > 2000
    ):
        return "/"
    return value


async def login_form(request: Request) -> Response:
    return page(request, "login", next=safe_next(request.query_params.get("next")), error=None, email="")


async def login(request: Request) -> Response:
    form = await request.form()
    email = str(form.get("email") or "").strip().lower()[:MAX_EMAIL]
    password = str(form.get("password") or "")
    wanted = safe_next(str(form.get("next") or ""))
    limits = request.app.state.login_limits
    address = request.client.host if request.client else "unknown"
    if not limits.allowed(email, address):
        log.warning("web sign-in refused: too many failures for this account or address")
        return page(
            request,
            "login",
            status_code=429,
            next=wanted,
            email=email,
            error=_("Too many failed sign-ins. Wait a quarter of an hour and try again."),
        )
    staff = await sign_in(request.app.state.desk, email, password)
    if staff is None:
        limits.failed(email, address)
        log.info("web sign-in failed")
        return page(
            request,
            "login",
            status_code=400,
            next=wanted,
            email=email,
            error=_("Wrong email or password."),
        )
    limits.succeeded(email)
    sessions.begin(request, staff)
    log.info("web sign-in: account %s", staff.id)
    return RedirectResponse(wanted, status_code=303)


async def logout(request: Request) -> Response:
    sessions.end(request)
    return RedirectResponse("/login", status_code=303)


ROUTES = [
    Route("/login", login_form, methods=["GET"]),
    Route("/login", login, methods=["POST"]),
    Route("/logout", logout, methods=["POST"]),
]
