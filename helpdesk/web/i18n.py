"""The workspace's language: gettext catalogs (Babel) for ru and en, chosen per request.

Order as data: `?lang=` (remembered in the session), then the session, then the browser's
Accept-Language, then the desk's default. Templates use Jinja2's i18n extension; its gettext calls read
the request's translations from a context variable, so concurrent requests in two languages never mix.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from functools import cache
from gettext import GNUTranslations, NullTranslations
from importlib.resources import files

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from helpdesk.rendering import DEFAULT_LANGUAGE, LANGUAGES

DOMAIN = "messages"

_current: ContextVar[str] = ContextVar("web_language", default=DEFAULT_LANGUAGE)


@cache
def translations(language: str) -> NullTranslations:
    catalog = files("helpdesk.web") / "locale" / language / "LC_MESSAGES" / f"{DOMAIN}.mo"
    if not catalog.is_file():
        return NullTranslations()
    with catalog.open("rb") as stream:
        return GNUTranslations(stream)


def _from_query(request: Request) -> str | None:
    wanted = request.query_params.get("lang")
    if wanted in LANGUAGES:
        request.session["lang"] = wanted
        return wanted
    return None


def _from_session(request: Request) -> str | None:
    remembered = request.session.get("lang")
    return remembered if remembered in LANGUAGES else None


def _from_browser(request: Request) -> str | None:
    for part in request.headers.get("accept-language", "").split(","):
        primary = part.split(";")[0].strip().lower()[:2]
        if primary in LANGUAGES:
            return primary
    return None


CHOOSERS: tuple[Callable[[Request], str | None], ...] = (_from_query, _from_session, _from_browser)


def choose(request: Request) -> str:
    """The request's language, which also becomes the one the templates translate into."""
    language = next((found for chooser in CHOOSERS if (found := chooser(request))), DEFAULT_LANGUAGE)
    _current.set(language)
    return language


def gettext(message: str) -> str:
    return translations(_current.get()).gettext(message)


def ngettext(singular: str, plural: str, n: int) -> str:
    return translations(_current.get()).ngettext(singular, plural, n)


def current() -> str:
    return _current.get()


class Language:
    """Chooses each request's language before any route runs (its messages are translated too)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            choose(Request(scope, receive))
        await self.app(scope, receive, send)
