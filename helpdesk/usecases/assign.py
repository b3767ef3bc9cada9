"""Assigning a ticket to a staff member (or taking it back)."""

from __future__ import annotations

from helpdesk import lifecycle
from helpdesk.db.models import Ticket
from helpdesk.db.types import utcnow
from helpdesk.desk import Desk
from helpdesk.usecases import events
from helpdesk.usecases.errors import InvalidTransition
from helpdesk.usecases.tickets import audit, get_ticket


async def assign(desk: Desk, reference: str, assignee: str | None, *, actor: str) -> Ticket:
    assignee = assignee.strip() if assignee else None
    async with desk.sessions.begin() as session:
        ticket = await get_ticket(session, reference, for_update=True)
        lifecycle.next_status(ticket, lifecycle.Move.ASSIGN)  # a closed ticket is refused before anything
        if ticket.assignee == assignee:
            raise InvalidTransition(f"{ticket.reference} is already assigned to {assignee or 'nobody'}")
        audit(session, ticket, actor, "assigned", previous=ticket.assignee, assignee=assignee)
        ticket.assignee = assignee
        now = utcnow()
        lifecycle.apply(ticket, lifecycle.Move.ASSIGN, now)
        ticket.updated_at = now
        await events.record(desk, session, events.Reassigned(ticket))
    desk.outbox_written()
    return ticket
