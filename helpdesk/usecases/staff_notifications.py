"""Mail to each staff address about a new ticket or a requester's follow-up, answerable by a signed
reply address.

Each notification goes through the outbox to one staff address (HELPDESK_STAFF_EMAILS), in the staff's
language (HELPDESK_REPORT_LANGUAGE, as the monthly report), with the request text, the classification and
``Reply-To: helpdesk+<token>@…``: the token is signed for that ticket and that staff address, so the
answer proves who wrote it (``helpdesk.usecases.staff_mail``). It is ``Auto-Submitted: auto-generated``
and counts against the recipient's hourly automatic-mail limit; nobody is told about their own mail, and
automatic mail notifies nobody.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk.db.models import OutboxItem, Ticket
from helpdesk.desk import Desk
from helpdesk.messages import InboundMessage, OutboundMessage
from helpdesk.outbox import new_message_id
from helpdesk.references import ticket_subject
from helpdesk.rendering import render
from helpdesk.usecases.auto_replies import allow_auto_reply
from helpdesk.usecases.cards import classification_context
from helpdesk.usecases.reply_addresses import reply_address, reply_address_key, reply_token
from helpdesk.usecases.staff_directory import staff_emails

# The request as the requester wrote it, cut for a notification (the whole of it stays on the ticket).
TEXT_LIMIT = 4000


async def notify_staff(
    desk: Desk,
    session: AsyncSession,
    ticket: Ticket,
    inbound: InboundMessage,
    *,
    created: bool,
    unverified: bool = False,
) -> None:
    """Queue one notification per staff address about ``inbound`` on ``ticket`` (in the caller's
    transaction)."""
    if not desk.mail_from or inbound.automatic:
        return
    sender = (inbound.sender.email or "").lower()
    recipients = sorted(address for address in await staff_emails(desk, session) if address != sender)
    if not recipients:
        return
    await session.flush()  # the ticket needs its id: the reply address is signed for it
    key = await reply_address_key(session)
    language = desk.staff_mail_language
    text = inbound.text_for_classification.strip()
    if len(text) > TEXT_LIMIT:
        text = text[: TEXT_LIMIT - 1].rstrip() + "…"
    body = render(
        "email/staff_notification.{lang}.txt.j2",
        language,
        reference=ticket.reference,
        created=created,
        unverified=unverified,
        channel=ticket.channel,
        sender=inbound.sender.name or inbound.sender.email or "",
        subject=ticket.subject,
        text=text,
        ticket_url=desk.ticket_url(ticket.reference),
        **classification_context(ticket, language),
    )
    for recipient in recipients:
        if not await allow_auto_reply(desk, session, recipient, ticket, "staff_notification"):
            continue
        outbound = OutboundMessage(
            channel="email",
            recipient=recipient,
            subject=ticket_subject(ticket.reference, ticket.subject, answer=False),
            text=body,
            reference=ticket.reference,
            message_id=new_message_id(desk.mail_domain),
            extra={
                "auto_submitted": "auto-generated",
                "reply_to": reply_address(desk.mail_from, reply_token(key, ticket.id, recipient)),
                "staff_notification": True,
            },
        )
        # No ticket message: it is a note to staff, not part of the conversation with the requester.
        session.add(
            OutboxItem(ticket_id=ticket.id, message_id=None, channel="email", payload=outbound.to_json())
        )
