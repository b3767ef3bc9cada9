"""/tickets/{REF}: the whole ticket, and the staff actions on it (reply, note, status, assign, reclassify,
tags, merge; matchmaking: refer, introduce, cooperation, outcome), and who else is on the page (presence).

Each action is the desk's use-case as it is, acting as "web:<email>"; it answers with a redirect back to
the ticket (POST → redirect → GET), so the page works without JavaScript and a reload never sends twice.
One exception: a reply written on a page older than the conversation is not sent; the page comes back with
the newer messages marked and the draft kept, and a second POST with ``confirm`` sends it.
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
from helpdesk.usecases.introductions import OUTCOMES, introduce, mark_cooperation, record_outcome
from helpdesk.usecases.listing import requester_tickets, show_ticket
from helpdesk.usecases.merge import merge
from helpdesk.usecases.note import add_note
from helpdesk.usecases.presence import POLL_SECONDS, State, mark, others, touch
from helpdesk.usecases.reclassify import reclassify
from helpdesk.usecases.referrals import TOP_EXPERTS_OFFERED, refer
from helpdesk.usecases.reply import StaleReply, reply
from helpdesk.usecases.staff_accounts import Staff, assignable_staff
from helpdesk.usecases.status import set_status
from helpdesk.usecases.tags import add_tag, remove_tag
from helpdesk.web import flash
from helpdesk.web.i18n import gettext as _
from helpdesk.web.templating import page

# A reference as the desk writes it; anything else is not looked up at all.
REFERENCE = re.compile(r"^[A-Z]{2,10}-\d{4}-\d{1,9}$")

Action = Callable[[Desk, str, FormData, Staff], Awaitable[str]]


def _not_found(request: Request) -> Response:
    return page(request, "not_found", status_code=404)


def _reference(request: Request) -> str | None:
    reference = str(request.path_params["reference"]).upper()
    return reference if REFERENCE.match(reference) else None


async def _render(request: Request, reference: str, status_code: int = 200, **extra: object) -> Response:
    desk = request.app.state.desk
    staff: Staff = request.state.staff
    try:
        ticket = await show_ticket(desk, reference)
    except TicketNotFound:
        return _not_found(request)
    # Opening the page is the first heartbeat, so the others see this visit even without JavaScript.
    await mark(desk, staff.id, reference, State.VIEWING)
    shown = [m["id"] for m in ticket["messages"]]
    return page(
        request,
        "ticket",
        status_code=status_code,
        ticket=ticket,
        others=await requester_tickets(desk, reference),
        assignees=await assignable_staff(desk),
        statuses=[s.value for s in lifecycle.SETTABLE],
        message=flash.take(request),
        present=await others(desk, staff.id, reference),
        poll_seconds=POLL_SECONDS,
        seen=max(shown, default=0),
        referable=((ticket.get("matches") or {}).get("experts") or [])[:TOP_EXPERTS_OFFERED],
        outcomes=OUTCOMES,
        **{"stale": [], "draft": "", "chosen": [], **extra},
    )


async def ticket_page(request: Request) -> Response:
    reference = _reference(request)
    if reference is None:
        return _not_found(request)
    return await _render(request, reference)


async def presence(request: Request) -> Response:
    """The heartbeat of an open ticket page (htmx poll); answers who else is there, as a fragment."""
    reference = _reference(request)
    if reference is None:
        return PlainTextResponse("Not found.", status_code=404)
    desk = request.app.state.desk
    staff: Staff = request.state.staff
    try:
        if request.query_params.get("state") == State.REPLYING:
            await mark(desk, staff.id, reference, State.REPLYING)
        else:
            await touch(desk, staff.id, reference)
        present = await others(desk, staff.id, reference)
    except TicketNotFound:
        return PlainTextResponse("Not found.", status_code=404)
    return page(request, "presence", reference=reference, present=present, poll_seconds=POLL_SECONDS)


def _numbers(value: str) -> list[int]:
    return [int(part) for part in re.split(r"[\s,]+", value.strip()) if part.isdigit()][:20]


async def _reply(desk: Desk, reference: str, form: FormData, staff: Staff) -> str:
    seen = str(form.get("seen") or "")
    await reply(
        desk,
        reference,
        str(form.get("body") or ""),
        actor=staff.actor,
        # A confirmed reply was shown the newer messages; a form without "seen" (an old page) is checked
        # against nothing, as before.
        seen=int(seen) if seen.isdigit() and not form.get("confirm") else None,
        resources=[str(url) for url in form.getlist("resource")][:20],
    )
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


async def _tag(desk: Desk, reference: str, form: FormData, staff: Staff) -> str:
    await add_tag(desk, reference, str(form.get("tag") or ""), actor=staff.actor)
    return _("Tag added.")


async def _untag(desk: Desk, reference: str, form: FormData, staff: Staff) -> str:
    await remove_tag(desk, reference, str(form.get("tag") or ""), actor=staff.actor)
    return _("Tag removed.")


# As the forms' maxlength says: a longer text is refused whole rather than cut.
MAX_COVERING_CHARS = 4000
MAX_OUTCOME_CHARS = 2000


def _text(form: FormData, field: str, limit: int) -> str:
    text = str(form.get(field) or "")
    if len(text) > limit:
        raise DeskError(_("The text is too long (at most %(limit)s characters).") % {"limit": limit})
    return text


def _expert(form: FormData) -> str:
    expert = str(form.get("expert") or "").strip()
    if not expert:
        raise DeskError(_("Choose an expert."))
    return expert


async def _refer(desk: Desk, reference: str, form: FormData, staff: Staff) -> str:
    experts = [str(e) for e in form.getlist("expert") if str(e).strip()][:TOP_EXPERTS_OFFERED]
    if not experts:
        raise DeskError(_("Choose an expert."))
    # The use-case refuses experts the roster does not have, or who are unavailable or full.
    message = _text(form, "body", MAX_COVERING_CHARS)
    await refer(desk, reference, experts, message=message, actor=staff.actor)
    return _("Offer sent to the chosen experts.")


async def _introduce(desk: Desk, reference: str, form: FormData, staff: Staff) -> str:
    return await introduce(desk, reference, _expert(form), actor=staff.actor)


async def _cooperation(desk: Desk, reference: str, form: FormData, staff: Staff) -> str:
    await mark_cooperation(desk, reference, _expert(form), actor=staff.actor)
    return _("Marked as in cooperation.")


async def _outcome(desk: Desk, reference: str, form: FormData, staff: Staff) -> str:
    outcome = str(form.get("outcome") or "")
    if outcome not in OUTCOMES:
        raise DeskError(_("Choose an outcome from the list."))
    text = _text(form, "text", MAX_OUTCOME_CHARS)
    await record_outcome(desk, reference, _expert(form), outcome, text, actor=staff.actor)
    return _("Outcome recorded.")


ACTIONS: dict[str, Action] = {
    "reply": _reply,
    "note": _note,
    "status": _status,
    "assign": _assign,
    "reclassify": _reclassify,
    "tag": _tag,
    "untag": _untag,
    "refer": _refer,
    "introduce": _introduce,
    "cooperation": _cooperation,
    "outcome": _outcome,
}


async def act(request: Request) -> Response:
    reference = _reference(request)
    action = ACTIONS.get(request.path_params["action"])
    if action is None or reference is None:
        return PlainTextResponse("Not found.", status_code=404)
    form = await request.form()
    try:
        done = await action(request.app.state.desk, reference, form, request.state.staff)
    except TicketNotFound:
        return PlainTextResponse("Not found.", status_code=404)
    except StaleReply as stale:
        held = await _render(
            request,
            reference,
            # 200, not 409: htmx (hx-boost) swaps in only successful answers, and this page is the answer.
            stale=stale.newer_ids,
            draft=str(form.get("body") or ""),
            chosen=form.getlist("resource"),
        )
        # The address bar keeps the ticket's page (a boosted form would show the action's URL, which a
        # reload would GET).
        held.headers["HX-Push-Url"] = f"/tickets/{reference}"
        return held
    except DeskError as refused:
        flash.say(request, str(refused), error=True)
    else:
        flash.say(request, done)
    return RedirectResponse(f"/tickets/{reference}", status_code=303)


async def merge_into(request: Request) -> Response:
    """Merge this ticket into another of the same requester; the survivor's page follows."""
    reference = _reference(request)
    if reference is None:
        return PlainTextResponse("Not found.", status_code=404)
    form = await request.form()
    into = str(form.get("into") or "").strip().upper()
    staff: Staff = request.state.staff
    try:
        if not REFERENCE.match(into):
            raise DeskError(_("Choose the ticket to merge into."))
        await merge(request.app.state.desk, reference, into, actor=staff.actor)
    except TicketNotFound:
        return PlainTextResponse("Not found.", status_code=404)
    except DeskError as refused:
        flash.say(request, str(refused), error=True)
        return RedirectResponse(f"/tickets/{reference}", status_code=303)
    flash.say(request, _("Merged: this ticket now holds both conversations."))
    return RedirectResponse(f"/tickets/{into}", status_code=303)


ROUTES = [
    Route("/tickets/{reference}", ticket_page, methods=["GET"]),
    Route("/tickets/{reference}/presence", presence, methods=["GET"]),
    Route("/tickets/{reference}/merge", merge_into, methods=["POST"]),
    Route("/tickets/{reference}/{action}", act, methods=["POST"]),
]
