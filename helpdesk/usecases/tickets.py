"""Finding tickets and writing the audit trail: shared by every use-case."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from helpdesk.db.models import AuditEvent, Message, Ticket
from helpdesk.references import find_reference
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


def audit(session: AsyncSession, ticket: Ticket, actor: str, action: str, **detail: Any) -> None:
    session.add(AuditEvent(ticket_id=ticket.id, actor=actor, action=action, detail=detail))
