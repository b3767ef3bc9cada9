"""/tickets/{REF}: the whole ticket, and the staff actions on it (reply, note, status, assign, reclassify).

Each action is the desk's use-case as it is, acting as "web:<email>"; it answers with a redirect back to
the ticket (POST → redirect → GET), so the page works without JavaScript and a reload never sends twice.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from helpdesk import lifecycle
from helpdesk.desk import Desk
from helpdesk.usecases.assign import assign
from helpdesk.usecases.errors import DeskError, TicketNotFound
from helpdesk.usecases.listing import requester_tickets, show_ticket
from helpdesk.usecases.note import add_note
from helpdesk.usecases.reclassify import reclassify
from helpdesk.usecases.reply import reply
from helpdesk.usecases.staff_accounts import Staff, assignable_staff
from helpdesk.usecases.status import set_status
from helpdesk.web import flash
from helpdesk.web.i18n import gettext as _
from helpdesk.web.templating import page

# A reference as the desk writes it; anything else is not looked up at all.
REFERENCE = re.compile(r"^[A-Z]{2,10}-\d{4}-\d{1,9}$")

Action = Callable[[Desk, str, FormData, Staff], Awaitable[str]]


def _not_found(request: Request) -> Response:
    return page(request, "not_found", status_code=404)


async def ticket_page(request: Request) -> Response:
    reference = request.path_params["reference"].upper()
    if not REFERENCE.match(reference):
        return _not_found(request)
    desk = request.app.state.desk
    try:
        ticket = await show_ticket(desk, reference)
    except TicketNotFound:
        return _not_found(request)
    return page(
        request,
        "ticket",
        ticket=ticket,
        others=await requester_tickets(desk, reference),
        assignees=await assignable_staff(desk),
        statuses=[s.value for s in lifecycle.SETTABLE],
        message=flash.take(request),
    )


def _numbers(value: str) -> list[int]:
    return [int(part) for part in re.split(r"[\s,]+", value.strip()) if part.isdigit()][:20]


async def _reply(desk: Desk, reference: str, form: FormData, staff: Staff) -> str:
    await reply(desk, reference, str(form.get("body") or ""), actor=staff.actor)
    return _("Reply queued for the requester.")


async def _note(desk: Desk, reference: str, form: FormData, staff: Staff) -> str:
    await add_note(desk, reference, str(form.get("body") or ""), actor=staff.actor)
    return _("Note added.")


async def _status(desk: Desk, reference: str, form: FormData, staff: Staff) -> str:
    status = str(form.get("status") or "")
    if status not in lifecycle.SETTABLE:
        raise DeskError(_("Choose a status from the list."))
    await set_status(desk, reference, status, actor=staff.actor)
    return _("Status changed.")


async def _assign(desk: Desk, reference: str, form: FormData, staff: Staff) -> str:
    wanted = str(form.get("assignee") or "")
    allowed = {s.email for s in await assignable_staff(desk)}
    if wanted and wanted not in allowed:
        raise DeskError(_("Choose someone from the list."))
    await assign(desk, reference, wanted or None, actor=staff.actor)
    return _("Assignment changed.")


async def _reclassify(desk: Desk, reference: str, form: FormData, staff: Staff) -> str:
    await reclassify(
        desk,
        reference,
        _numbers(str(form.get("targets") or "")),
        _numbers(str(form.get("core_functions") or "")),
        actor=staff.actor,
    )
    return _("Classification corrected.")


ACTIONS: dict[str, Action] = {
    "reply": _reply,
    "note": _note,
    "status": _status,
    "assign": _assign,
    "reclassify": _reclassify,
}


async def act(request: Request) -> Response:
    reference = request.path_params["reference"].upper()
    action = ACTIONS.get(request.path_params["action"])
    if action is None or not REFERENCE.match(reference):
        return PlainTextResponse("Not found.", status_code=404)
    form = await request.form()
    try:
        done = await action(request.app.state.desk, reference, form, request.state.staff)
    except TicketNotFound:
        return PlainTextResponse("Not found.", status_code=404)
    except DeskError as refused:
        flash.say(request, str(refused), error=True)
    else:
        flash.say(request, done)
    return RedirectResponse(f"/tickets/{reference}", status_code=303)


ROUTES = [
    Route("/tickets/{reference}", ticket_page, methods=["GET"]),
    Route("/tickets/{reference}/{action}", act, methods=["POST"]),
]
