"""The app factory: routes, the middleware in order, static files, and the desk it works on."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

from helpdesk.config import Settings, WebSettings
from helpdesk.desk import Desk
from helpdesk.usecases.desk_secrets import derived_key
from helpdesk.web.access import StaffAccess
from helpdesk.web.csrf import CsrfProtection
from helpdesk.web.headers import SecurityHeaders
from helpdesk.web.i18n import Language
from helpdesk.web.login_limits import LoginLimits
from helpdesk.web.routes import (
    admin,
    attachments,
    auth,
    canned,
    health,
    inbox,
    knowledge,
    referral_answers,
    reports,
    tickets,
)
from helpdesk.web.sessions import DeskSessions

OpenDesk = Callable[[], AbstractAsyncContextManager[Desk]]


def given(desk: Desk) -> OpenDesk:
    """For `helpdesk run`: the desk the runtime already has."""

    @contextlib.asynccontextmanager
    async def opened() -> AsyncIterator[Desk]:
        yield desk

    return opened


def create_app(
    open_desk: OpenDesk,
    web: WebSettings,
    settings: Settings | None = None,
    *,
    response_target_hours: float = 48.0,
) -> Starlette:
    """``settings``: the service's, for the admin pages' health checks and dead-letter retries."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with open_desk() as desk:
            app.state.desk = desk
            if web.secret_key is not None:
                app.state.session_key = web.secret_key.reveal()
            else:
                async with desk.sessions.begin() as session:
                    app.state.session_key = (await derived_key(session, "web-session")).hex()
            yield

    app = Starlette(
        routes=[
            *health.ROUTES,
            *auth.ROUTES,
            *inbox.ROUTES,
            *attachments.ROUTES,
            *tickets.ROUTES,
            *knowledge.ROUTES,
            *reports.ROUTES,
            *admin.ROUTES,
            *canned.ROUTES,
            *referral_answers.ROUTES,
            Mount("/static", StaticFiles(packages=[("helpdesk.web", "static")]), name="static"),
        ],
        # Outermost first: headers on every answer (refusals too); the session before what reads it.
        middleware=[
            Middleware(SecurityHeaders),
            # A page on another name resolving to us (DNS rebinding) is refused once our name is known.
            *(
                [Middleware(TrustedHostMiddleware, allowed_hosts=[web.host_name, "127.0.0.1", "localhost"])]
                if web.host_name
                else []
            ),
            Middleware(DeskSessions, https_only=web.https),
            Middleware(Language),
            Middleware(CsrfProtection),
            Middleware(StaffAccess),
        ],
        lifespan=lifespan,
    )
    app.state.login_limits = LoginLimits()
    app.state.link_limits = LoginLimits()  # refused one-click answer links, per address
    app.state.response_target_hours = response_target_hours
    app.state.settings = settings
    return app
