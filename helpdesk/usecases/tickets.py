"""Finding tickets and writing the audit trail: shared by every use-case."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from helpdesk.db.models import Attachment, AuditEvent, Message, Ticket
from helpdesk.db.types import utcnow
from helpdesk.messages import InboundMessage
from helpdesk.references import find_reference
from helpdesk.usecases import one_flush
from helpdesk.usecases.errors import TicketNotFound


async def get_ticket(session: AsyncSession, reference: str, *, for_update: bool = False) -> Ticket:
    normalised = find_reference(reference) or reference.strip().upper()
    query = (
        select(Ticket)
        .where(Ticket.reference == normalised)
        .options(
            selectinload(Ticket.requester), selectinload(Ticket.messages).selectinload(Message.attachments)
        )
    )
    if for_update:
        query = query.with_for_update(of=Ticket)
    ticket = await session.scalar(query)
    if ticket is None:
        raise TicketNotFound(normalised)
    return ticket


def store_inbound(
    session: AsyncSession,
    ticket: Ticket,
    inbound: InboundMessage,
    *,
    kind: str = "inbound",
    author: str | None = None,
) -> Message:
    """Keep a message as it arrived, with its attachments, on `ticket` (a staff mail is kept as a note)."""
    message = Message(
        ticket=ticket,
        kind=kind,
        channel=inbound.channel,
        author=author or inbound.sender.email or inbound.sender.name or str(inbound.sender.telegram_user_id),
        subject=inbound.subject,
        body=inbound.text,
        html=inbound.html,
        channel_message_id=inbound.channel_message_id,
        automatic=inbound.automatic,
        created_at=inbound.received_at or utcnow(),
        attachments=[
            Attachment(filename=a.filename, content_type=a.content_type, size=a.size, data=a.data)
            for a in inbound.attachments
        ],
    )
    session.add(message)
    return message


def desk_note(session: AsyncSession, ticket: Ticket, text: str) -> None:
    """An internal note the desk itself writes on ``ticket`` (staff only, never sent to the requester)."""
    session.add(Message(ticket=ticket, kind="note", channel=ticket.channel, author="helpdesk", body=text))


def audit(session: AsyncSession, ticket: Ticket, actor: str, action: str, **detail: Any) -> None:
    group = one_flush.current(session)
    if group is not None:
        group.hold(AuditEvent, {"actor": actor, "action": action, "detail": detail}, ticket_id=ticket)
    else:
        session.add(AuditEvent(ticket=ticket, actor=actor, action=action, detail=detail))
