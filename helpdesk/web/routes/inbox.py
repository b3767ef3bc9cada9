"""/ : the inbox (a view, filters, a search, keyset pages) and /bulk: one action on the ticked tickets.

The query is the desk's (`inbox_page` is the one call to it); the filters are a GET form and live in the
URL, so a filtered page is a link and works without JavaScript. A bulk action answers with every ticket's
outcome and a link back to the page it came from.
"""

from __future__ import annotations

import typing
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from helpdesk import lifecycle
from helpdesk.messages import Channel
from helpdesk.usecases.bulk import BulkOutcome, Outcome, bulk_assign, bulk_close, bulk_status
from helpdesk.usecases.inbox import VIEWS, InboxCriteria, InboxPage, InvalidCriteria, inbox
from helpdesk.usecases.reclassify import CORE_FUNCTIONS, TARGETS
from helpdesk.usecases.staff_accounts import Staff, assignable_staff
from helpdesk.web.i18n import gettext as _
from helpdesk.web.routes.tickets import REFERENCE
from helpdesk.web.templating import page
from knowledge.models import PARTY_CODES

DEFAULT_VIEW = "new"
MAX_QUERY = 200
PER_PAGE = 50
# The URL parameters the inbox keeps between pages, in the order they appear in links.
FILTERS = ("view", "party", "target", "core_function", "channel", "status", "assignee", "q")
CHANNELS: tuple[str, ...] = typing.get_args(Channel)
BULK_ACTIONS = ("assign", "status", "close")


def _criteria(request: Request, staff: Staff) -> tuple[InboxCriteria, dict[str, str]]:
    """The criteria the URL asks for, and the filters as given (to refill the form and build links)."""
    given = {k: request.query_params.get(k, "").strip()[:MAX_QUERY] for k in FILTERS}
    given["view"] = given["view"] if given["view"] in VIEWS else DEFAULT_VIEW

    def number(name: str) -> int | None:
        value = given[name]
        if value and not value.isdigit():
            raise InvalidCriteria(_("Choose a number from the list."))
        return int(value) if value else None

    criteria = InboxCriteria(
        view=given["view"],
        party=given["party"] or None,
        target=number("target"),
        core_function=number("core_function"),
        channel=given["channel"] or None,
        status=given["status"] or None,
        assignee=given["assignee"] or None,
        q=given["q"] or None,
        after=request.query_params.get("after") or None,
        per_page=PER_PAGE,
        viewer=staff.email,
    )
    return criteria, given


async def inbox_page(request: Request, criteria: InboxCriteria) -> InboxPage:
    """The tickets the inbox shows; the one place the web asks the desk for them."""
    return await inbox(
        request.app.state.desk, criteria, response_target_hours=request.app.state.response_target_hours
    )


def _link(given: dict[str, str], **changes: str) -> str:
    return "/?" + urlencode({k: v for k, v in {**given, **changes}.items() if v})


async def inbox_view(request: Request) -> Response:
    staff: Staff = request.state.staff
    refusal = None
    result = InboxPage(rows=[], total=0, total_capped=False, next_after=None)
    try:
        criteria, given = _criteria(request, staff)
        result = await inbox_page(request, criteria)
    except InvalidCriteria as refused:
        given = {k: request.query_params.get(k, "")[:MAX_QUERY] for k in FILTERS}
        given["view"] = given["view"] if given["view"] in VIEWS else DEFAULT_VIEW
        refusal = str(refused)
    return page(
        request,
        "inbox",
        status_code=400 if refusal else 200,
        result=result,
        refusal=refusal,
        given=given,
        view=given["view"],
        views=list(VIEWS),
        view_link=lambda name: _link({}, view=name),
        next_link=_link(given, after=result.next_after) if result.next_after else None,
        here=_link(given, after=request.query_params.get("after", "")),
        first_link=_link(given) if request.query_params.get("after") else None,
        parties=PARTY_CODES,
        targets=sorted(TARGETS),
        core_functions=sorted(CORE_FUNCTIONS),
        channels=CHANNELS,
        statuses=["active", *(s.value for s in lifecycle.Status)],
        settable=[s.value for s in lifecycle.SETTABLE],
        assignees=await assignable_staff(request.app.state.desk),
    )


def _back(value: str) -> str:
    """Only a link to the inbox itself goes back (never another site: no open redirect)."""
    return value if value.startswith("/?") and "//" not in value and "\\" not in value else "/"


async def bulk(request: Request) -> Response:
    staff: Staff = request.state.staff
    form = await request.form()
    action = str(form.get("action") or "")
    picked = [str(v) for v in form.getlist("ticket")]
    # A reference not written as the desk writes it is never looked up; it is reported as refused.
    wellformed = [r for r in picked if REFERENCE.match(r.strip().upper())]
    outcomes = [
        BulkOutcome(r[:40], Outcome.REFUSED, _("not a ticket reference"))
        for r in picked
        if r not in wellformed
    ]
    refusal = None
    desk = request.app.state.desk
    try:
        if action not in BULK_ACTIONS:
            raise InvalidCriteria(_("Choose what to do with the selected tickets."))
        if action == "assign":
            wanted = str(form.get("assignee") or "")
            if wanted and wanted not in {s.email for s in await assignable_staff(desk)}:
                raise InvalidCriteria(_("Choose someone from the list."))
            outcomes += await bulk_assign(desk, wellformed, wanted or None, actor=staff.actor)
        elif action == "status":
            outcomes += await bulk_status(desk, wellformed, str(form.get("status") or ""), actor=staff.actor)
        else:
            outcomes += await bulk_close(desk, wellformed, actor=staff.actor)
    except InvalidCriteria as refused:
        refusal = str(refused)
    return page(
        request,
        "bulk_done",
        status_code=400 if refusal else 200,
        outcomes=outcomes,
        refusal=refusal,
        back=_back(str(form.get("back") or "/")),
    )


ROUTES = [Route("/", inbox_view, methods=["GET"]), Route("/bulk", bulk, methods=["POST"])]
