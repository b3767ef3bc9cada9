"""/canned: canned replies (staff-managed snippets per language) and putting one into a reply.

Two ways in, one result: with htmx, picking a snippet swaps the reply textarea for one holding what was
typed plus the snippet (`/canned/fill`, a POST); without JavaScript, the picker's button opens
`/tickets/{REF}/compose?canned=ID`, a reply form already filled in. Either way staff read it before
sending; nothing is sent from here. The ticket page includes `canned/_ticket.html.j2` once: a link to
the compose page, which htmx replaces with the picker (`/tickets/{REF}/canned`).
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from helpdesk.rendering import LANGUAGES
from helpdesk.usecases.canned_replies import (
    MAX_BODY,
    delete_snippet,
    get_snippet,
    list_snippets,
    save_snippet,
)
from helpdesk.usecases.errors import DeskError, TicketNotFound
from helpdesk.usecases.listing import show_ticket
from helpdesk.web import flash
from helpdesk.web.i18n import gettext as _
from helpdesk.web.templating import page, web_environment

MAX_REFERENCE = 40


def _number(value: str | None) -> int | None:
    return int(value) if value and value.isdigit() and len(value) < 10 else None


def _joined(body: str, snippet: str) -> str:
    """What was typed, then the snippet (a blank line between), within a reply's size."""
    body = body.rstrip()
    return ((body + "\n\n" if body else "") + snippet)[: MAX_BODY * 2]


async def canned_page(request: Request) -> Response:
    editing = None
    if (wanted := _number(request.query_params.get("edit"))) is not None:
        try:
            editing = await get_snippet(request.app.state.desk, wanted)
        except DeskError:
            editing = None
    return page(
        request,
        "canned/list",
        snippets=await list_snippets(request.app.state.desk),
        languages=LANGUAGES,
        editing=editing,
        message=flash.take(request),
    )


async def canned_save(request: Request) -> Response:
    form = await request.form()
    try:
        await save_snippet(
            request.app.state.desk,
            str(form.get("language") or ""),
            str(form.get("title") or ""),
            str(form.get("body") or ""),
            actor=request.state.staff.actor,
            snippet_id=_number(str(form.get("id") or "")),
        )
    except DeskError as refused:
        flash.say(request, str(refused), error=True)
    else:
        flash.say(request, _("Canned reply saved."))
    return RedirectResponse("/canned", status_code=303)


async def canned_delete(request: Request) -> Response:
    try:
        await delete_snippet(request.app.state.desk, request.path_params["snippet_id"])
    except DeskError as refused:
        flash.say(request, str(refused), error=True)
    else:
        flash.say(request, _("Canned reply deleted."))
    return RedirectResponse("/canned", status_code=303)


async def canned_fill(request: Request) -> Response:
    """htmx: the reply textarea again, holding what was typed and the chosen snippet.

    A POST (with the reply form's CSRF token), so the draft never appears in a URL or an access log."""
    form = await request.form()
    body = str(form.get("body") or "")
    if (wanted := _number(str(form.get("canned") or ""))) is not None:
        try:
            body = _joined(body, (await get_snippet(request.app.state.desk, wanted)).body)
        except DeskError:
            pass
    html = web_environment().get_template("web/canned/_textarea.html.j2").render(body=body)
    return HTMLResponse(html)


async def _ticket(request: Request) -> dict[str, Any] | None:
    try:
        return await show_ticket(
            request.app.state.desk, request.path_params["reference"].upper()[:MAX_REFERENCE]
        )
    except TicketNotFound:
        return None


async def picker(request: Request) -> Response:
    """htmx, on the ticket page: the picker for snippets in the ticket's language."""
    ticket = await _ticket(request)
    if ticket is None:
        return HTMLResponse("", status_code=404)
    snippets = await list_snippets(request.app.state.desk, ticket.get("language") or None)
    html = (
        web_environment()
        .get_template("web/canned/_picker.html.j2")
        .render(ticket=ticket, canned_replies=snippets)
    )
    return HTMLResponse(html)


async def compose(request: Request) -> Response:
    """Without JavaScript: the reply form, filled in with the chosen snippet."""
    desk = request.app.state.desk
    ticket = await _ticket(request)
    if ticket is None:
        return page(request, "kb/missing", status_code=404)
    body = ""
    if (wanted := _number(request.query_params.get("canned"))) is not None:
        try:
            body = (await get_snippet(desk, wanted)).body
        except DeskError:
            pass
    return page(
        request,
        "canned/compose",
        ticket=ticket,
        body=body,
        canned_replies=await list_snippets(desk, ticket.get("language") or None),
    )


ROUTES = [
    Route("/canned", canned_page, methods=["GET"]),
    Route("/canned", canned_save, methods=["POST"]),
    Route("/canned/fill", canned_fill, methods=["POST"]),
    Route("/canned/{snippet_id:int}/delete", canned_delete, methods=["POST"]),
    Route("/tickets/{reference}/compose", compose, methods=["GET"]),
    Route("/tickets/{reference}/canned", picker, methods=["GET"]),
]
