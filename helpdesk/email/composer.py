"""The email channel's composer: what the desk mails a requester (acknowledgement, notice, staff reply),
to which address, threaded under which messages.

Renders templates only; ``mime_message.py`` turns the result into MIME when the outbox sends it.
"""

from __future__ import annotations

from helpdesk.composer import Acknowledgement, ExpertLetter, ReceiptRules, referral_message_id
from helpdesk.db.models import Ticket
from helpdesk.messages import InboundMessage, OutboundMessage
from helpdesk.outbox import new_message_id
from helpdesk.references import ticket_subject
from helpdesk.rendering import render
from helpdesk.usecases.errors import NoRoute

# Clients thread on the last few ids; twenty are plenty and keep the References header a sane size.
REFERENCES_KEPT = 20


class EmailComposer:
    # A mailed follow-up needs no receipt (the thread shows it arrived) unless the desk has something to
    # tell; every automatic mail counts against the recipient's hourly limit.
    receipts = ReceiptRules(per_recipient_hourly_limit=True)

    def actor(self, inbound: InboundMessage) -> str:
        return f"email:{inbound.sender.email}"

    def acknowledgement(self, ack: Acknowledgement, *, mail_domain: str) -> OutboundMessage | None:
        ticket, inbound = ack.ticket, ack.inbound
        recipient = inbound.sender.email
        files = [{"filename": a.filename, "size": a.readable_size} for a in inbound.oversized_attachments]
        if not recipient or not (ack.created or files):
            return None
        language = ticket.language
        if ack.created:
            context = {
                "name": inbound.sender.name,
                "reference": ticket.reference,
                "files": files,
                "resources": ack.resources,
            }
            text = render("email/ack.{lang}.txt.j2", language, **context)
            html: str | None = render("email/ack.{lang}.html.j2", language, **context)
        else:
            text = render("email/oversized.{lang}.txt.j2", language, reference=ticket.reference, files=files)
            html = None
        return OutboundMessage(
            channel="email",
            recipient=recipient,
            subject=ticket_subject(ticket.reference, ticket.subject),
            text=text,
            html=html,
            reference=ticket.reference,
            message_id=new_message_id(mail_domain),
            in_reply_to=inbound.channel_message_id,
            references=(*inbound.replies_to, inbound.channel_message_id),
            extra={"auto_submitted": "auto-replied"},
        )

    def reply(self, ticket: Ticket, text: str, *, mail_domain: str) -> OutboundMessage:
        if not ticket.requester.email:
            raise NoRoute(f"{ticket.reference}: the requester has no email address")
        thread = [m.channel_message_id for m in ticket.messages if m.channel_message_id and m.kind != "note"]
        return OutboundMessage(
            channel="email",
            recipient=ticket.requester.email,
            subject=ticket_subject(ticket.reference, ticket.subject),
            text=render("email/reply.{lang}.txt.j2", ticket.language, text=text, reference=ticket.reference),
            html=render("email/reply.{lang}.html.j2", ticket.language, text=text, reference=ticket.reference),
            reference=ticket.reference,
            message_id=new_message_id(mail_domain),
            in_reply_to=thread[-1] if thread else None,
            references=tuple(thread[-REFERENCES_KEPT:]),
            extra={"auto_submitted": "no"},
        )

    def consent_question(
        self, ticket: Ticket, text: str, referral_id: int, *, mail_domain: str
    ) -> OutboundMessage:
        return self.reply(ticket, text, mail_domain=mail_domain)  # the mail asks for a written yes or no

    def expert(self, letter: ExpertLetter, *, mail_domain: str) -> OutboundMessage:
        return OutboundMessage(
            channel="email",
            recipient=letter.recipient,
            subject=f"[{letter.tag}] {letter.summary[:200]}",
            text=render(f"email/expert_{letter.kind}.{{lang}}.txt.j2", letter.language, letter=letter),
            reference=letter.reference,
            message_id=referral_message_id(mail_domain, letter.referral_id),
            in_reply_to=letter.in_reply_to,
            references=(letter.in_reply_to,) if letter.in_reply_to else (),
            # Written by staff (the offer, the introduction): the expert's auto-responder may answer it.
            extra={"auto_submitted": "no", **({"reply_to": letter.reply_to} if letter.reply_to else {})},
        )
