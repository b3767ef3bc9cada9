"""Email-specific rules of receiving: who may continue a ticket, staff replies by mail, participants,
oversized attachments and the per-recipient limit on automatic replies.

Threading (issue 4): the ``[TSCC-…]`` subject tag, then In-Reply-To/References against the ticket's
messages. A follow-up is attached only when its sender is the requester, a participant (an address that
was on To/Cc of the ticket's mail) or staff; otherwise the mail opens a new ticket with a visible
"possible follow-up of …" note. Automatic mail (bounces, out-of-office) is stored on the ticket it
answers whoever sent it: it is never acknowledged and never reopens anything.

Trust (issue 10): a staff address acts as staff only when proven (``helpdesk.usecases.staff_mail``);
unproven, it is a stranger marked "unverified staff sender". Mail the trusted mail server failed that
claims to be the requester or a participant is kept on the ticket, marked unverified, and changes
nothing: no reopening, no status change, no participants.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk.db.models import Attachment, Message, Requester, Ticket, TicketParticipant
from helpdesk.desk import Desk
from helpdesk.messages import InboundMessage, OutboundMessage
from helpdesk.outbox import enqueue, new_message_id
from helpdesk.references import find_reference
from helpdesk.rendering import render
from helpdesk.usecases.auto_replies import allow_auto_reply
from helpdesk.usecases.errors import InvalidTransition, NoRoute
from helpdesk.usecases.reply import reply_in_session
from helpdesk.usecases.reply_addresses import token_ticket_id
from helpdesk.usecases.staff_mail import (
    claims_staff,
    mark_unverified_sender,
    mark_unverified_staff,
    server_vouches,
    staff_proof,
)
from helpdesk.usecases.tickets import audit, desk_note, store_inbound

Role = Literal["requester", "participant", "staff", "automatic"]


@dataclass(frozen=True, slots=True)
class EmailThread:
    """Where an inbound email belongs."""

    # The ticket it continues (None: open a new one) and why the sender may continue it.
    ticket: Ticket | None = None
    role: Role | None = None
    # A ticket the mail refers to but whose sender may not join it: noted on the new ticket.
    possible_followup_of: str | None = None
    # A staff member's (person-written, proven) mail on this ticket: relay it to the requester.
    staff_ticket: Ticket | None = None
    # Mail from a staff address without proof: handled as a stranger's, marked, the staff group alerted.
    unverified_staff: bool = False
    # The trusted mail server failed the sender of a follow-up: kept, marked, changes nothing.
    unverified_sender: bool = False

    @property
    def changes_ticket(self) -> bool:
        """Whether the mail may reopen the ticket, move it on, or add participants."""
        return not self.unverified_sender


async def email_thread(
    desk: Desk, session: AsyncSession, inbound: InboundMessage, requester: Requester
) -> EmailThread:
    candidates: list[Ticket] = []
    reference = find_reference(inbound.subject) or find_reference(inbound.text)
    if reference is not None:
        ticket = await session.scalar(select(Ticket).where(Ticket.reference == reference))
        if ticket is not None:
            candidates.append(ticket)
    if inbound.replies_to:
        ticket = await session.scalar(
            select(Ticket)
            .join(Message, Message.ticket_id == Ticket.id)
            .where(Message.channel_message_id.in_(inbound.replies_to))
            .order_by(Message.id.desc())
            .limit(1)
        )
        if ticket is not None and ticket not in candidates:
            candidates.append(ticket)
    for token in inbound.reply_tokens:
        # A signed reply address names its ticket even when the subject lost the tag.
        ticket_id = token_ticket_id(token)
        ticket = await session.get(Ticket, ticket_id) if ticket_id is not None else None
        if ticket is not None and ticket not in candidates:
            candidates.append(ticket)
    # A staff address the Centre's own server vouches for is a staff member even on a ticket they do not
    # answer as staff (their own request, say); anything else from a staff address is unproven so far.
    unverified_staff = claims_staff(desk, inbound) and not server_vouches(inbound)
    for ticket in candidates:
        role = await sender_role(desk, session, ticket, inbound, requester)
        if role == "staff" and ticket is not candidates[0]:
            # A mail that names one ticket must not act as staff on another one (a signed reply address
            # for ticket A under the subject of ticket B proves nothing about B, and relays nothing to A).
            role = None
        if role == "staff":
            unverified_staff = False
            if not inbound.automatic:
                return EmailThread(staff_ticket=ticket, role="staff")
        if role is not None:
            failed = role in ("requester", "participant") and inbound.authenticity.verdict == "failed"
            return EmailThread(
                ticket=ticket, role=role, unverified_staff=unverified_staff, unverified_sender=failed
            )
        if inbound.automatic:
            # A bounce or an out-of-office answering our mail belongs to that ticket, whoever sends it.
            return EmailThread(ticket=ticket, role="automatic", unverified_staff=unverified_staff)
    if candidates:
        return EmailThread(possible_followup_of=candidates[0].reference, unverified_staff=unverified_staff)
    return EmailThread(unverified_staff=unverified_staff)


async def sender_role(
    desk: Desk, session: AsyncSession, ticket: Ticket, inbound: InboundMessage, requester: Requester
) -> Role | None:
    if ticket.requester_id == requester.id:
        return "requester"
    address = (inbound.sender.email or "").lower()
    if not address:
        return None
    if claims_staff(desk, inbound):
        # Only a proven staff mail acts as staff; an unproven one is a stranger's (see staff_mail).
        return "staff" if await staff_proof(desk, session, ticket, inbound) else None
    participant = await session.scalar(
        select(TicketParticipant.id).where(
            TicketParticipant.ticket_id == ticket.id, TicketParticipant.email == address
        )
    )
    return "participant" if participant is not None else None


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
    await note_oversized(desk, session, ticket, None, inbound)


async def after_email_stored(
    desk: Desk,
    session: AsyncSession,
    ticket: Ticket,
    message: Message,
    inbound: InboundMessage,
    thread: EmailThread,
    *,
    created: bool,
) -> None:
    """Participants, trust marks, the possible-follow-up note and oversized attachments, once ``message`` is
    stored."""
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
            "is not its requester, a participant or staff, so this mail opened a new ticket.",
        )
        audit(session, ticket, "helpdesk", "possible_followup", of=thread.possible_followup_of)
    await note_oversized(desk, session, ticket, message, inbound)


async def add_participants(
    desk: Desk, session: AsyncSession, ticket: Ticket, addresses: tuple[str, ...]
) -> None:
    own = (desk.mail_from or "").lower()
    requester = await session.get(Requester, ticket.requester_id)
    skip = {own, (requester.email or "").lower() if requester else ""} | set(desk.staff_emails)
    wanted = [a.lower() for a in addresses if a and a.lower() not in skip]
    if not wanted:
        return
    known = set(
        await session.scalars(select(TicketParticipant.email).where(TicketParticipant.ticket_id == ticket.id))
    )
    for address in dict.fromkeys(wanted):
        if address not in known:
            session.add(TicketParticipant(ticket_id=ticket.id, email=address))


async def note_oversized(
    desk: Desk, session: AsyncSession, ticket: Ticket, message: Message | None, inbound: InboundMessage
) -> None:
    """Oversized attachments: listed on the message (no data), noted for staff, the sender told."""
    if not inbound.oversized_attachments:
        return
    if message is not None:
        for item in inbound.oversized_attachments:
            message.attachments.append(
                Attachment(filename=item.filename, content_type=item.content_type, size=item.size, data=None)
            )
    listing = ", ".join(f"{a.filename} ({_megabytes(a.size)})" for a in inbound.oversized_attachments)
    desk_note(
        session,
        ticket,
        f"Not stored, over the attachment size limit: {listing}. "
        f"Sender: {inbound.sender.email or 'unknown'}.",
    )
    recipient = inbound.sender.email
    if inbound.automatic or not recipient:
        return
    if not await allow_auto_reply(desk, session, recipient, ticket, "oversized_notice"):
        return
    language = ticket.language
    files = [{"filename": a.filename, "size": _megabytes(a.size)} for a in inbound.oversized_attachments]
    outbound = OutboundMessage(
        channel="email",
        recipient=recipient,
        subject=f"[{ticket.reference}] Re: {ticket.subject}",
        text=render("email/oversized.{lang}.txt.j2", language, reference=ticket.reference, files=files),
        reference=ticket.reference,
        message_id=new_message_id(desk.mail_domain),
        in_reply_to=inbound.channel_message_id,
        references=(*inbound.replies_to, inbound.channel_message_id),
        extra={"auto_submitted": "auto-replied"},
    )
    notice = Message(
        ticket_id=ticket.id,
        kind="outbound",
        channel="email",
        author="helpdesk",
        subject=outbound.subject,
        body=outbound.text,
        channel_message_id=outbound.message_id,
        automatic=True,
    )
    session.add(notice)
    await enqueue(session, ticket, notice, outbound)


def _megabytes(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MB"
