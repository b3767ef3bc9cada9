"""An internal note: staff only, never sent to the requester."""

from __future__ import annotations

from helpdesk.db.models import Message, Ticket
from helpdesk.db.types import utcnow
from helpdesk.desk import Desk
from helpdesk.usecases import events
from helpdesk.usecases.errors import InvalidTransition
from helpdesk.usecases.tickets import audit, get_ticket


async def add_note(desk: Desk, reference: str, text: str, *, actor: str) -> Ticket:
    text = text.strip()
    if not text:
        raise InvalidTransition("a note needs some text")
    async with desk.sessions.begin() as session:
        ticket = await get_ticket(session, reference, for_update=True)
        message = Message(ticket_id=ticket.id, kind="note", channel=ticket.channel, author=actor, body=text)
        session.add(message)
        await session.flush()
        ticket.updated_at = utcnow()
        audit(session, ticket, actor, "noted", message_id=message.id)
        await events.record(desk, session, events.Noted(ticket))
    desk.outbox_written()
    return ticket
