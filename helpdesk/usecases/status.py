"""Moving a ticket through new → open → waiting → resolved → closed (and back to open)."""

from __future__ import annotations

from helpdesk import lifecycle
from helpdesk.db.models import Ticket
from helpdesk.db.types import utcnow
from helpdesk.desk import Desk
from helpdesk.usecases import events
from helpdesk.usecases.tickets import audit, get_ticket


async def set_status(desk: Desk, reference: str, status: str, *, actor: str) -> Ticket:
    move = lifecycle.staff_move(status)
    async with desk.sessions.begin() as session:
        ticket = await get_ticket(session, reference, for_update=True)
        now = utcnow()
        previous = lifecycle.apply(ticket, move, now)
        audit(session, ticket, actor, "status", previous=previous, status=ticket.status)
        ticket.updated_at = now
        await events.record(desk, session, events.StatusChanged(ticket))
    desk.outbox_written()
    return ticket


async def close(desk: Desk, reference: str, *, actor: str) -> Ticket:
    return await set_status(desk, reference, lifecycle.Status.CLOSED, actor=actor)
