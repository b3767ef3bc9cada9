"""Writing to the transactional outbox: inside the caller's transaction, never sending anything itself."""

from __future__ import annotations

from email.utils import make_msgid

from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk.db.models import Message, OutboxItem, Ticket
from helpdesk.messages import OutboundMessage


def new_message_id(domain: str, idstring: str = "tscc") -> str:
    return make_msgid(idstring=idstring, domain=domain)


async def enqueue(
    session: AsyncSession, ticket: Ticket, message: Message, outbound: OutboundMessage
) -> OutboxItem:
    """Queue `outbound`, the delivery of the already added `message` on `ticket` (linked as objects: written
    by the transaction's next flush, ids or not). The row carries the outbound's own id when it has one
    (our Message-ID), so the worker need not write it again once sent."""
    if outbound.message_id is not None:
        message.channel_message_id = outbound.message_id
    item = OutboxItem(ticket=ticket, message=message, channel=outbound.channel, payload=outbound.to_json())
    session.add(item)
    return item
