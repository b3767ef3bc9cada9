"""/ : the inbox, one view at a time.

The query itself is the desk's (`inbox_page` below is the one call to it), so a richer inbox use-case
(full-text search, filters, paging) replaces it in one place.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from helpdesk.usecases.listing import TicketFilter, list_tickets
from helpdesk.usecases.staff_accounts import Staff
from helpdesk.web.templating import page

# The views as data: name → the listing filter it stands for. Simple listing cannot say "past the response
# target": until the richer inbox query (helpdesk/usecases/inbox.py) replaces `inbox_page`, that view
# shows every active ticket.
VIEWS: dict[str, Any] = {
    "new": lambda staff: TicketFilter(status="new"),
    "unassigned": lambda staff: TicketFilter(status="active", assignee="none"),
    "mine": lambda staff: TicketFilter(status="active", assignee=staff.email),
    "waiting": lambda staff: TicketFilter(status="waiting"),
    "overdue": lambda staff: TicketFilter(status="active"),
    "all": lambda staff: TicketFilter(),
}
DEFAULT_VIEW = "new"
MAX_QUERY = 200


async def inbox_page(request: Request, staff: Staff, view: str, query: str) -> list[dict[str, Any]]:
    """The tickets the inbox shows; the one place the web asks the desk for them."""
    tickets = await list_tickets(request.app.state.desk, VIEWS[view](staff))
    if query:
        needle = query.casefold()
        tickets = [
            t
            for t in tickets
            if needle in (t["subject"] or "").casefold()
            or needle in (t["reference"] or "").casefold()
            or needle in (t["requester"] or "").casefold()
        ]
    return tickets


async def inbox(request: Request) -> Response:
    staff: Staff = request.state.staff
    view = request.query_params.get("view", DEFAULT_VIEW)
    if view not in VIEWS:
        view = DEFAULT_VIEW
    query = request.query_params.get("q", "").strip()[:MAX_QUERY]
    tickets = await inbox_page(request, staff, view, query)
    return page(request, "inbox", tickets=tickets, view=view, views=list(VIEWS), q=query)


ROUTES = [Route("/", inbox, methods=["GET"])]
