"""The one answer to an inbound message: composed by its channel, under that channel's receipt rules,
stored on the ticket and queued in the caller's transaction."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, bindparam, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk.composer import Acknowledgement
from helpdesk.db.models import Message, Ticket
from helpdesk.db.types import utcnow
from helpdesk.desk import Desk
from helpdesk.messages import InboundMessage
from helpdesk.outbox import enqueue
from helpdesk.usecases.auto_replies import allow_auto_reply
from helpdesk.usecases.read_ahead import NOT_READ, answered, remember

RECEIPT_WINDOW = timedelta(minutes=1)


def _receipts_sent(ticket_id: ColumnElement[Any]) -> Select[tuple[int]]:
    """A ticket's follow-up receipts on a channel since a moment: what the per-ticket limit counts."""
    return (
        select(func.count())
        .select_from(Message)
        .where(
            Message.ticket_id == ticket_id,
            Message.kind == "outbound",
            Message.channel == bindparam("receipt_channel"),
            Message.automatic.is_(True),
            Message.created_at >= bindparam("receipts_since"),
        )
    )


# Built once, bound per call: building a statement costs more CPU than running it.
_RECEIPTS_SENT = _receipts_sent(bindparam("ticket_id"))
# The same count beside each ticket of a statement over tickets (a chat's open tickets reads it along, so a
# follow-up does not ask again): its parameters come from ``receipt_parameters``.
RECEIPTS_SENT_PER_TICKET = _receipts_sent(Ticket.id).scalar_subquery()


def receipt_parameters(channel: str) -> dict[str, Any]:
    return {"receipt_channel": channel, "receipts_since": utcnow() - RECEIPT_WINDOW}


def receipts_read_along(
    session: AsyncSession, inbound: InboundMessage, ticket: Ticket, sent: int, parameters: dict[str, Any]
) -> None:
    """Keep ``ticket``'s count read along for ``inbound``, before that message wrote anything; used once,
    by that message only. No other message of a group commit writes receipts on the tickets of this chat
    without being written first: only their requester's messages join them, and one sender's messages are
    never held back together (:mod:`helpdesk.usecases.one_flush`)."""
    key = (inbound.channel, inbound.channel_message_id, ticket.id)
    remember(session, "receipts", key, (sent, parameters["receipts_since"]))


async def acknowledge(desk: Desk, session: AsyncSession, ack: Acknowledgement) -> None:
    inbound, ticket = ack.inbound, ack.ticket
    if inbound.automatic:
        return  # never answer a robot (RFC 3834): that is how mail loops start
    composer = desk.composer(inbound.channel)
    rules = composer.receipts
    if not ack.created and rules.followup_receipts_per_ticket:
        if not await _receipt_due(desk, session, ticket, inbound):
            return
    outbound = composer.acknowledgement(ack, mail_domain=desk.mail_domain)
    if outbound is None:
        return
    if rules.per_recipient_hourly_limit:
        if not await allow_auto_reply(desk, session, outbound.recipient, ticket, ack.kind):
            return
    row = Message(
        ticket=ticket,
        kind="outbound",
        channel=outbound.channel,
        author="helpdesk",
        subject=outbound.subject,
        body=outbound.text,
        html=outbound.html,
        channel_message_id=outbound.message_id,
        automatic=True,
        # Set like the inbound message's, so the two go to the database in one batched INSERT.
        created_at=utcnow(),
    )
    session.add(row)
    if ack.resources:
        # Kept with the delivery for the reports: what the requester was sent (the matches may change later).
        outbound = replace(outbound, extra={**outbound.extra, "resources": [dict(r) for r in ack.resources]})
    await enqueue(session, ticket, row, outbound, hand_off=desk.hand_off)


async def _receipt_due(desk: Desk, session: AsyncSession, ticket: Ticket, inbound: InboundMessage) -> bool:
    """Whether a follow-up gets its own receipt: a few per ticket per minute, then a burst is stored
    silently (the requester has just been told where their messages go)."""
    read_along = answered(session, "receipts", (inbound.channel, inbound.channel_message_id, ticket.id))
    if read_along is NOT_READ:
        parameters = receipt_parameters(inbound.channel)
        sent = await session.scalar(_RECEIPTS_SENT, {"ticket_id": ticket.id, **parameters})
        since = parameters["receipts_since"]
    else:
        sent, since = read_along
    registration = 1 if ticket.created_at >= since else 0
    return (sent or 0) < desk.limits.receipts_per_minute + registration
