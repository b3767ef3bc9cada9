"""Merging two tickets of one requester: the conversation of one (the merged) moves into the other (the
surviving), and the merged ticket is closed with a note pointing to the survivor.

What moves: messages (their attachments ride with them), the outbox rows of those messages (so their
delivery state shows where they now are), participants (an email Cc), tags. What stays on the merged
ticket, linked: its audit trail (the history of that ticket), with a "merged" event on both sides naming
the other. The search document and the classification rows of both tickets are rebuilt by the database
triggers of migration 0011 when messages change ticket; the expert load counts active tickets, so closing
the merged ticket is all it needs.
"""

from __future__ import annotations

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk import lifecycle
from helpdesk.db.models import AuditEvent, Message, OutboxItem, Ticket, TicketParticipant
from helpdesk.db.types import utcnow
from helpdesk.desk import Desk
from helpdesk.usecases import events
from helpdesk.usecases.errors import InvalidTransition
from helpdesk.usecases.tickets import audit, get_ticket


async def merge(desk: Desk, merged: str, into: str, *, actor: str) -> Ticket:
    """Move ticket ``merged`` into ticket ``into``; returns the surviving ticket."""
    async with desk.sessions.begin() as session:
        # Both locked in one order (by reference) so two merges of the same pair cannot deadlock.
        merged, into = merged.strip().upper(), into.strip().upper()
        locked = {r: await get_ticket(session, r, for_update=True) for r in sorted({merged, into})}
        source, target = locked[merged], locked[into]
        _refuse(source, target)
        now = utcnow()
        moved = list(await session.scalars(select(Message.id).where(Message.ticket_id == source.id)))
        await session.execute(update(Message).where(Message.id.in_(moved)).values(ticket_id=target.id))
        await session.execute(
            update(OutboxItem).where(OutboxItem.message_id.in_(moved)).values(ticket_id=target.id)
        )
        await _move_participants(session, source, target)
        target.tags = list(dict.fromkeys([*target.tags, *source.tags]))
        target.updated_at = now
        note = Message(
            ticket_id=source.id,
            kind="note",
            channel=source.channel,
            author=actor,
            body=f"Merged into {target.reference}: the conversation continues there.",
        )
        session.add(note)
        previous = lifecycle.apply(source, lifecycle.Move.CLOSE, now)
        source.updated_at = now
        audit(session, source, actor, "merged", into=target.reference, messages=len(moved), previous=previous)
        audit(session, target, actor, "merged", merged=source.reference, messages=len(moved))
        await session.flush()
        await events.record(desk, session, events.Merged(source))
        await events.record(desk, session, events.Merged(target))
    desk.outbox_written()
    return target


# A chain of merges (A into B, B into C) is followed this far; longer ones stop at the last ticket reached.
MAX_HOPS = 5


async def surviving(session: AsyncSession, ticket: Ticket) -> Ticket:
    """The ticket a message for ``ticket`` belongs to: itself, or the ticket it was merged into.

    Threading asks this for a ticket named by reference or by a signed reply address, so a requester
    quoting the old reference reaches the conversation instead of reopening the closed, merged ticket.
    """
    for _ in range(MAX_HOPS):
        if ticket.status != lifecycle.Status.CLOSED:
            return ticket
        detail = await session.scalar(
            select(AuditEvent.detail)
            .where(AuditEvent.ticket_id == ticket.id, AuditEvent.action == "merged")
            .order_by(AuditEvent.id.desc())
            .limit(1)
        )
        into = detail.get("into") if isinstance(detail, dict) else None
        survivor = await session.scalar(select(Ticket).where(Ticket.reference == into)) if into else None
        if survivor is None:
            return ticket
        ticket = survivor
    return ticket


def _refuse(source: Ticket, target: Ticket) -> None:
    if source.id == target.id:
        raise InvalidTransition(f"{source.reference} cannot be merged into itself")
    if source.requester_id != target.requester_id:
        raise InvalidTransition(
            f"{source.reference} and {target.reference} have different requesters; only one requester's "
            "tickets are merged"
        )
    if source.status == lifecycle.Status.CLOSED:
        raise InvalidTransition(f"{source.reference} is closed; reopen it to merge it")
    if target.status == lifecycle.Status.CLOSED:
        raise InvalidTransition(f"{target.reference} is closed; merge into an open ticket or reopen it")


async def _move_participants(session: AsyncSession, source: Ticket, target: Ticket) -> None:
    have = set(
        await session.scalars(select(TicketParticipant.email).where(TicketParticipant.ticket_id == target.id))
    )
    for email in await session.scalars(
        select(TicketParticipant.email).where(TicketParticipant.ticket_id == source.id)
    ):
        if email not in have:
            session.add(TicketParticipant(ticket_id=target.id, email=email))
    await session.execute(delete(TicketParticipant).where(TicketParticipant.ticket_id == source.id))
