"""Who may act as staff by email, and what happens to mail that only claims to.

The one rule: a mail from a staff address (an enabled staff account, or HELPDESK_STAFF_EMAILS as a seed:
``helpdesk.usecases.staff_directory``) acts as staff on a ticket only when it is
proven, either

* the Centre's own mail server vouches for it: its Authentication-Results (the trusted authserv-id) show a
  DKIM or DMARC pass for exactly the staff address's domain, or
* it answers the signed reply address the desk put in the notification it sent that staff member about
  that ticket (``helpdesk.usecases.reply_addresses``).

Anything else from a staff address is a stranger's mail: it never reaches a requester, the message and the
ticket are marked "unverified staff sender" (a note, a tag, the audit trail), and the staff Telegram group
is alerted through the outbox (bounded by the per-recipient automatic-message limit; the audit trail
records every one).
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk.db.models import Message, OutboxItem, Ticket
from helpdesk.desk import Desk
from helpdesk.messages import InboundMessage, OutboundMessage
from helpdesk.rendering import render
from helpdesk.usecases.auto_replies import allow_auto_reply
from helpdesk.usecases.cards import staff_language
from helpdesk.usecases.reply_addresses import reply_address_key, token_proves
from helpdesk.usecases.staff_directory import staff_emails
from helpdesk.usecases.tickets import audit, desk_note

UNVERIFIED_STAFF_TAG = "unverified-staff-sender"
UNVERIFIED_SENDER_TAG = "unverified-sender"


async def claims_staff(desk: Desk, session: AsyncSession, inbound: InboundMessage) -> bool:
    """The sender address is a staff address (which by itself proves nothing)."""
    address = (inbound.sender.email or "").lower()
    # A sender without an address (a Telegram user) claims nothing: no need to read the staff accounts.
    return bool(address) and address in await staff_emails(desk, session)


def server_vouches(inbound: InboundMessage) -> bool:
    """The trusted mail server found a DKIM or DMARC pass for exactly the sender address's domain."""
    domain = (inbound.sender.email or "").lower().rpartition("@")[2]
    vouched = inbound.authenticity
    return vouched.verdict == "verified" and bool(domain) and domain in vouched.domains


async def staff_proof(
    desk: Desk, session: AsyncSession, ticket: Ticket, inbound: InboundMessage
) -> str | None:
    """How ``inbound`` is proven to come from the staff member it names, for ``ticket``; None if it is not."""
    address = (inbound.sender.email or "").lower()
    if address not in await staff_emails(desk, session):
        return None
    if server_vouches(inbound):
        return "trusted mail server"
    if inbound.reply_tokens:
        key = await reply_address_key(session)
        if any(token_proves(key, token, ticket.id, address) for token in inbound.reply_tokens):
            return "signed reply address"
    return None


async def mark_unverified_staff(
    desk: Desk, session: AsyncSession, ticket: Ticket, message: Message, inbound: InboundMessage
) -> None:
    """The mail claimed a staff address without proof: mark it and tell the staff group."""
    message.unverified = True
    address = inbound.sender.email or "?"
    _tag(ticket, UNVERIFIED_STAFF_TAG)
    desk_note(
        session,
        ticket,
        f"Unverified staff sender: this mail claims to come from the staff address {address}, but "
        "neither the Centre's mail server (DKIM/DMARC) nor a signed reply address proves it. It was "
        "handled as a stranger's mail and nothing of it was sent to any requester.",
    )
    audit(
        session,
        ticket,
        "helpdesk",
        "unverified_staff_sender",
        message_channel_id=inbound.channel_message_id,
        verdict=inbound.authenticity.verdict,
    )
    await _alert_staff_group(desk, session, ticket, address)


async def mark_unverified_sender(
    session: AsyncSession, ticket: Ticket, message: Message, inbound: InboundMessage
) -> None:
    """The trusted mail server failed a mail claiming to be from the ticket's requester or a participant."""
    message.unverified = True
    _tag(ticket, UNVERIFIED_SENDER_TAG)
    desk_note(
        session,
        ticket,
        f"Unverified sender: the Centre's mail server failed the authentication (SPF/DKIM/DMARC) of this "
        f"mail from {inbound.sender.email or '?'}. It is kept here, but it did not reopen the ticket, change "
        "its status or add participants.",
    )
    audit(session, ticket, "helpdesk", "unverified_sender", message_channel_id=inbound.channel_message_id)


async def _alert_staff_group(desk: Desk, session: AsyncSession, ticket: Ticket, address: str) -> None:
    chat_id = desk.staff_telegram_chat_id
    if chat_id is None:
        return
    if not await allow_auto_reply(desk, session, f"telegram:{chat_id}", ticket, "unverified_staff_alert"):
        return
    alert = OutboundMessage(
        channel="telegram",
        recipient=str(chat_id),
        text=render(
            "bot/unverified_staff.{lang}.txt.j2",
            staff_language(),
            reference=ticket.reference,
            address=address,
        ),
        reference=ticket.reference,
    )
    session.add(OutboxItem(ticket=ticket, channel="telegram", payload=alert.to_json()))


def _tag(ticket: Ticket, tag: str) -> None:
    if tag not in (ticket.tags or []):
        ticket.tags = [*(ticket.tags or []), tag]  # a new list: the JSON column sees the change
