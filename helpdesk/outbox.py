"""Writing to the transactional outbox: inside the caller's transaction, never sending anything itself."""

from __future__ import annotations

from email.utils import make_msgid

from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk.db.models import Message, OutboxItem, Ticket
from helpdesk.handoff import HandOff, lease_receipt
from helpdesk.messages import OutboundMessage
from helpdesk.usecases import one_flush


def new_message_id(domain: str, idstring: str = "tscc") -> str:
    return make_msgid(idstring=idstring, domain=domain)


async def enqueue(
    session: AsyncSession,
    ticket: Ticket,
    message: Message,
    outbound: OutboundMessage,
    *,
    hand_off: HandOff | None = None,
) -> None:
    """Queue `outbound`, the delivery of the already added `message` on `ticket` (linked as objects: written
    by the transaction's next flush, ids or not; in a group written by one flush, a plain row held for it).
    The row carries the outbound's own id when it has one (our Message-ID), so the worker need not write it
    again once sent. With ``hand_off`` (a receipt, and a worker in this process) the row may be written
    leased to that worker and handed to it after the commit (:mod:`helpdesk.handoff`)."""
    if outbound.message_id is not None:
        message.channel_message_id = outbound.message_id
    group = one_flush.current(session)
    handing = lease_receipt(session, hand_off if group else None, outbound.channel, outbound.recipient)
    payload = outbound.to_json()
    if group is None:
        session.add(OutboxItem(ticket=ticket, message=message, channel=outbound.channel, payload=payload))
        return
    row = {
        "channel": outbound.channel,
        "payload": payload,
        "locked_until": handing.locked_until if handing else None,
        "claim_token": handing.claim_token if handing else None,
    }
    if handing is None:
        group.hold(OutboxItem, row, ticket_id=ticket, message_id=message)
        return

    def written(item_id: int) -> None:
        handing.hold(item_id, outbound.channel, payload, ticket.id, message.id)

    # Its id comes back with its INSERT, known by its claim token (fresh for each handed row).
    group.hold(OutboxItem, row, written=("claim_token", written), ticket_id=ticket, message_id=message)
