"""Writing to the transactional outbox: inside the caller's transaction, never sending anything itself."""

from __future__ import annotations

from email.utils import make_msgid

from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk.db.models import Message, OutboxItem, Ticket
from helpdesk.messages import OutboundMessage
from helpdesk.usecases import one_flush


def new_message_id(domain: str, idstring: str = "tscc") -> str:
    return make_msgid(idstring=idstring, domain=domain)


async def enqueue(session: AsyncSession, ticket: Ticket, message: Message, outbound: OutboundMessage) -> None:
    """Queue `outbound`, the delivery of the already added `message` on `ticket` (linked as objects: written
    by the transaction's next flush, ids or not; in a group written by one flush, a plain row held for it).
    The row carries the outbound's own id when it has one (our Message-ID), so the worker need not write it
    again once sent."""
    if outbound.message_id is not None:
        message.channel_message_id = outbound.message_id
    group = one_flush.current(session)
    if group is not None:
        row = {"channel": outbound.channel, "payload": outbound.to_json()}
        group.hold(OutboxItem, row, ticket_id=ticket, message_id=message)
    else:
        session.add(
            OutboxItem(ticket=ticket, message=message, channel=outbound.channel, payload=outbound.to_json())
        )
