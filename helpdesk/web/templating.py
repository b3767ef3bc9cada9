"""Pages from templates/web/: the project's Jinja2 environment (autoescaped) with the i18n extension."""

from __future__ import annotations

from functools import cache
from typing import Any

from jinja2 import Environment
from starlette.requests import Request
from starlette.responses import HTMLResponse

from helpdesk.rendering import environment
from helpdesk.web import csrf, i18n


def delivery_state(delivery: dict[str, Any] | None) -> str:
    """queued / sent / failed, as staff read it (the outbox says pending for queued)."""
    if delivery is None:
        return ""
    return {"pending": "queued"}.get(delivery["status"], delivery["status"])


@cache
def web_environment() -> Environment:
    env = environment().overlay(extensions=["jinja2.ext.i18n"])
    env.install_gettext_callables(i18n.gettext, i18n.ngettext, newstyle=True)  # type: ignore[attr-defined]
    return env


def page(request: Request, name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    template = web_environment().get_template(f"web/{name}.html.j2")
    html = template.render(
        request=request,
        lang=i18n.current(),
        delivery_state=delivery_state,
        staff=request.scope.get("state", {}).get("staff"),
        csrf_token=csrf.token(request),
        **context,
    )
    return HTMLResponse(html, status_code=status_code)
