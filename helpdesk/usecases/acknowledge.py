"""The one answer to an inbound message: composed by its channel, under that channel's receipt rules,
stored on the ticket and queued in the caller's transaction."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk.composer import Acknowledgement
from helpdesk.db.models import Message, Ticket
from helpdesk.db.types import utcnow
from helpdesk.desk import Desk
from helpdesk.outbox import enqueue
from helpdesk.usecases.auto_replies import allow_auto_reply

RECEIPT_WINDOW = timedelta(minutes=1)


async def acknowledge(desk: Desk, session: AsyncSession, ack: Acknowledgement) -> None:
    inbound, ticket = ack.inbound, ack.ticket
    if inbound.automatic:
        return  # never answer a robot (RFC 3834): that is how mail loops start
    composer = desk.composer(inbound.channel)
    rules = composer.receipts
    if not ack.created and rules.followup_receipts_per_ticket:
        if not await _receipt_due(desk, session, ticket, inbound.channel):
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
    await enqueue(session, ticket, row, outbound)


async def _receipt_due(desk: Desk, session: AsyncSession, ticket: Ticket, channel: str) -> bool:
    """Whether a follow-up gets its own receipt: a few per ticket per minute, then a burst is stored
    silently (the requester has just been told where their messages go)."""
    since = utcnow() - RECEIPT_WINDOW
    sent = await session.scalar(
        select(func.count())
        .select_from(Message)
        .where(
            Message.ticket_id == ticket.id,
            Message.kind == "outbound",
            Message.channel == channel,
            Message.automatic.is_(True),
            Message.created_at >= since,
        )
    )
    registration = 1 if ticket.created_at >= since else 0
    return (sent or 0) < desk.limits.receipts_per_minute + registration
