"""Steps of receiving for what today only mail carries, once the threading rules
(``helpdesk.usecases.threading_rules``) have decided where a message belongs: staff replies by mail relayed,
participants (To/Cc), trust marks, the possible-follow-up note and oversized attachments. They act on what
the message holds, not on its channel's name, so they run for every channel (a chat has no Cc).

Trust (issue 10): mail the trusted mail server failed that claims to be the requester or a participant is
kept on the ticket, marked unverified, and changes nothing: no reopening, no status change, no participants.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk.composer import Acknowledgement
from helpdesk.db.models import Attachment, Message, Requester, Ticket, TicketParticipant
from helpdesk.desk import Desk
from helpdesk.messages import InboundMessage
from helpdesk.usecases.acknowledge import acknowledge
from helpdesk.usecases.errors import InvalidTransition, NoRoute
from helpdesk.usecases.reply import reply_in_session
from helpdesk.usecases.staff_directory import staff_emails
from helpdesk.usecases.staff_mail import mark_unverified_sender, mark_unverified_staff
from helpdesk.usecases.threading_rules import Thread
from helpdesk.usecases.tickets import audit, desk_note, store_inbound


async def relay_staff_mail(
    desk: Desk, session: AsyncSession, ticket: Ticket, inbound: InboundMessage
) -> None:
    """A staff member mailed a ticket: their words go to the requester as a staff reply, on the ticket's
    own channel; their original mail is kept on the ticket as an internal note."""
    staff = inbound.sender.email or "staff"
    await session.refresh(ticket, ["requester", "messages"])
    try:
        # The staff member's own text, not the history their mail client quoted below it.
        await reply_in_session(desk, session, ticket, inbound.text_for_classification, actor=f"email:{staff}")
    except (InvalidTransition, NoRoute) as exc:
        desk_note(session, ticket, f"Mail from staff {staff} was not relayed to the requester: {exc}")
    store_inbound(session, ticket, inbound, kind="note", author=staff)
    audit(session, ticket, f"email:{staff}", "received", message_channel_id=inbound.channel_message_id)
    note_oversized(session, ticket, None, inbound)
    # Only something to tell them (an attachment not kept) makes an answer to a staff member's mail.
    await acknowledge(desk, session, Acknowledgement(ticket, inbound, created=False))


async def after_stored(
    desk: Desk,
    session: AsyncSession,
    ticket: Ticket,
    message: Message,
    inbound: InboundMessage,
    thread: Thread,
    *,
    created: bool,
) -> None:
    """Participants, trust marks, the possible-follow-up note and oversized attachments, once ``message`` is
    stored (the sender is told about those in the message's one acknowledgement)."""
    if thread.unverified_staff:
        await mark_unverified_staff(desk, session, ticket, message, inbound)
    if thread.unverified_sender:
        await mark_unverified_sender(session, ticket, message, inbound)
    if thread.changes_ticket and (created or thread.role in ("requester", "participant")):
        await add_participants(desk, session, ticket, inbound.cc)
        if inbound.recipients_cut:
            desk_note(
                session,
                ticket,
                f"This mail was addressed to {inbound.recipients_cut} more people (To/Cc) than are read; "
                "they were not added as participants.",
            )
    if created and thread.possible_followup_of is not None:
        desk_note(
            session,
            ticket,
            f"Possible follow-up of {thread.possible_followup_of}: {inbound.sender.email or 'the sender'} "
            "is not its requester, a participant or staff, so this message opened a new ticket.",
        )
        audit(session, ticket, "helpdesk", "possible_followup", of=thread.possible_followup_of)
    note_oversized(session, ticket, message, inbound)


async def add_participants(
    desk: Desk, session: AsyncSession, ticket: Ticket, addresses: tuple[str, ...]
) -> None:
    if not addresses:
        return
    own = (desk.mail_from or "").lower()
    # A ticket opened by this very message is not written yet: its requester is the object it was given.
    new = ticket.id is None
    requester = ticket.requester if new else await session.get(Requester, ticket.requester_id)
    skip = {own, (requester.email or "").lower() if requester else ""} | await staff_emails(desk, session)
    wanted = [a.lower() for a in addresses if a and a.lower() not in skip]
    if not wanted:
        return
    query = select(TicketParticipant.email).where(TicketParticipant.ticket_id == ticket.id)
    known = set() if new else set(await session.scalars(query))
    for address in dict.fromkeys(wanted):
        if address not in known:
            session.add(TicketParticipant(ticket=ticket, email=address))


def note_oversized(
    session: AsyncSession, ticket: Ticket, message: Message | None, inbound: InboundMessage
) -> None:
    """Oversized attachments: listed on the message (no data) and noted for staff."""
    if not inbound.oversized_attachments:
        return
    if message is not None:
        for item in inbound.oversized_attachments:
            message.attachments.append(
                Attachment(filename=item.filename, content_type=item.content_type, size=item.size, data=None)
            )
    listing = ", ".join(f"{a.filename} ({a.readable_size})" for a in inbound.oversized_attachments)
    desk_note(
        session,
        ticket,
        f"Not stored, over the attachment size limit: {listing}. "
        f"Sender: {inbound.sender.email or 'unknown'}.",
    )
