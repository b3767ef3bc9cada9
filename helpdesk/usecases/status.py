"""Moving a ticket through new → open → waiting → resolved → closed (and back to open)."""

from __future__ import annotations

from helpdesk.db.models import Ticket
from helpdesk.db.types import utcnow
from helpdesk.desk import Desk
from helpdesk.usecases.cards import queue_card
from helpdesk.usecases.errors import InvalidTransition
from helpdesk.usecases.tickets import audit, get_ticket

STATUSES = ("new", "open", "waiting", "resolved", "closed")


async def set_status(desk: Desk, reference: str, status: str, *, actor: str) -> Ticket:
    if status not in STATUSES or status == "new":
        allowed = ", ".join(s for s in STATUSES if s != "new")
        raise InvalidTransition(f"unknown status {status!r}; choose one of {allowed}")
    async with desk.sessions.begin() as session:
        ticket = await get_ticket(session, reference, for_update=True)
        if ticket.status == status:
            raise InvalidTransition(f"{ticket.reference} is already {status}")
        now = utcnow()
        audit(session, ticket, actor, "status", previous=ticket.status, status=status)
        if status in ("open", "waiting"):
            ticket.resolved_at = None
            ticket.closed_at = None
        if status in ("resolved", "closed") and ticket.resolved_at is None:
            ticket.resolved_at = now
        if status == "closed":
            ticket.closed_at = now
        ticket.status = status
        ticket.updated_at = now
        await queue_card(desk, session, ticket)
    desk.outbox_written()
    return ticket


async def close(desk: Desk, reference: str, *, actor: str) -> Ticket:
    return await set_status(desk, reference, "closed", actor=actor)
