"""A staff reply: stored on the ticket and queued for the requester's own channel."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk import lifecycle
from helpdesk.db.models import Message, Ticket
from helpdesk.db.types import utcnow
from helpdesk.desk import Desk
from helpdesk.outbox import enqueue
from helpdesk.usecases import events
from helpdesk.usecases.errors import InvalidTransition
from helpdesk.usecases.tickets import audit, get_ticket


async def reply(desk: Desk, reference: str, text: str, *, actor: str) -> Ticket:
    text = text.strip()
    if not text:
        raise InvalidTransition("a reply needs some text")
    async with desk.sessions.begin() as session:
        ticket = await get_ticket(session, reference, for_update=True)
        await reply_in_session(desk, session, ticket, text, actor=actor)
    desk.outbox_written()
    return ticket


async def reply_in_session(
    desk: Desk, session: AsyncSession, ticket: Ticket, text: str, *, actor: str
) -> Message:
    """The reply inside the caller's transaction (``ticket`` with its requester and messages loaded).

    Used by ``reply`` and by email intake, where a staff member's mail to a ticket is a staff reply.
    """
    text = text.strip()
    if not text:
        raise InvalidTransition("a reply needs some text")
    lifecycle.next_status(ticket, lifecycle.Move.REPLY)  # refused before anything is queued
    composer = desk.composer(ticket.channel)
    outbound = composer.reply(ticket, text, mail_domain=desk.mail_domain)
    message = Message(
        ticket_id=ticket.id,
        kind="outbound",
        channel=ticket.channel,
        author=actor,
        subject=outbound.subject,
        body=text,
        html=outbound.html,
        channel_message_id=outbound.message_id,
    )
    session.add(message)
    await enqueue(session, ticket, message, outbound)
    now = utcnow()
    if ticket.first_response_at is None:
        ticket.first_response_at = now
    lifecycle.apply(ticket, lifecycle.Move.REPLY, now)
    ticket.updated_at = now
    await session.flush()  # the audit event names the reply's id
    audit(session, ticket, actor, "replied", message_id=message.id)
    await events.record(desk, session, events.Replied(ticket))
    return message
