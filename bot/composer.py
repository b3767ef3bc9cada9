"""The Telegram channel's composer: what the desk says in a requester's chat, and to which chat.

Renders templates only (no python-telegram-bot here): the outbox carries the result to ``bot/sender.py``.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from helpdesk.composer import Acknowledgement, ExpertLetter, ReceiptRules
from helpdesk.db.models import Ticket
from helpdesk.messages import InboundMessage, OutboundMessage
from helpdesk.rendering import render
from helpdesk.usecases.cards import button_labels
from helpdesk.usecases.errors import NoRoute

# The yes and no buttons of a referral, ``<kind>:<referral id>:<yes|no>`` (``bot/requester.py`` reads them
# back): the requester's consent to an introduction, and the expert's answer to an offer.
CONSENT = "cs"
EXPERT = "ex"


# Their captions in ``templates/bot/buttons.<lang>.txt.j2``: ``consent_yes``, ``expert_no``…
_CAPTIONS = {CONSENT: "consent", EXPERT: "expert"}


def answer_data(kind: str, referral_id: int, answer: str) -> str:
    return f"{kind}:{referral_id}:{answer}"


def _yes_and_no(kind: str, referral_id: int, language: str) -> dict[str, Any]:
    """A referral's yes and no to press, captioned in ``language``, as Bot API ``reply_markup``."""
    label = button_labels(language)
    row = [
        {"text": label[f"{_CAPTIONS[kind]}_{a}"], "callback_data": answer_data(kind, referral_id, a)}
        for a in ("yes", "no")
    ]
    return {"inline_keyboard": [row]}


class TelegramComposer:
    # A chat makes a new ticket or a follow-up one keystroke away: both are capped, receipts included.
    receipts = ReceiptRules(open_ticket_cap=True, followup_receipts_per_ticket=True)

    def actor(self, inbound: InboundMessage) -> str:
        return f"telegram:{inbound.sender.telegram_user_id}"

    def acknowledgement(self, ack: Acknowledgement, *, mail_domain: str) -> OutboundMessage | None:
        ticket, inbound = ack.ticket, ack.inbound
        template = "bot/ack.{lang}.txt.j2" if ack.created else "bot/followup.{lang}.txt.j2"
        if ack.crowded:
            template = "bot/open_cap.{lang}.txt.j2"
        shown = [{"reference": t.reference, "subject": t.subject[:80]} for t in ack.crowded]
        return OutboundMessage(
            channel="telegram",
            # The chat it came from (a ticket over the cap may have been opened in another chat).
            recipient=str(inbound.sender.telegram_chat_id or ticket.telegram_chat_id),
            text=render(
                template, ticket.language, reference=ticket.reference, resources=ack.resources, tickets=shown
            ),
            reference=ticket.reference,
            extra={"reply_to_message_id": int(inbound.channel_message_id.rpartition(":")[2])},
        )

    def reply(self, ticket: Ticket, text: str, *, mail_domain: str) -> OutboundMessage:
        chat_id = ticket.telegram_chat_id or ticket.requester.telegram_chat_id
        if chat_id is None:
            raise NoRoute(f"{ticket.reference}: no Telegram chat to answer in")
        # Quote the requester's last message in that chat, so the answer sits under the question it answers.
        asked = [
            m.channel_message_id
            for m in ticket.messages
            if m.kind == "inbound" and m.channel_message_id and m.channel_message_id.startswith(f"{chat_id}:")
        ]
        return OutboundMessage(
            channel="telegram",
            recipient=str(chat_id),
            text=render("bot/reply.{lang}.txt.j2", ticket.language, text=text, reference=ticket.reference),
            reference=ticket.reference,
            extra={"reply_to_message_id": int(asked[-1].rpartition(":")[2])} if asked else {},
        )

    def consent_question(
        self, ticket: Ticket, text: str, referral_id: int, *, mail_domain: str
    ) -> OutboundMessage:
        """The question with a yes and a no to press (a typed answer still counts: ``introductions``)."""
        question = self.reply(ticket, text, mail_domain=mail_domain)
        markup = _yes_and_no(CONSENT, referral_id, ticket.language or "ru")
        return replace(question, extra={**question.extra, "reply_markup": markup})

    def expert(self, letter: ExpertLetter, *, mail_domain: str) -> OutboundMessage:
        # A private chat's id is the user's id: the roster's Telegram id is where the letter goes.
        extra: dict[str, Any] = {}
        if letter.kind in ("offer", "reminder"):
            # A yes and a no to press (a typed answer still counts: ``threading_rules.REFERRAL_RULES``).
            extra = {"reply_markup": _yes_and_no(EXPERT, letter.referral_id, letter.language or "ru")}
        return OutboundMessage(
            channel="telegram",
            recipient=letter.recipient,
            text=render(f"bot/expert_{letter.kind}.{{lang}}.txt.j2", letter.language, letter=letter),
            reference=letter.reference,
            extra=extra,
        )
