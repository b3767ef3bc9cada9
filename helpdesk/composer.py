"""What a channel adapter supplies so the desk can answer on it without knowing its name.

Each channel (``bot/composer.py`` for Telegram, ``helpdesk/email/composer.py`` for mail) has one composer:
how an acknowledgement, a staff reply and a notice on that channel are worded and addressed, who the sender
is in the audit trail, and the channel's receipt rules as data. The composition root registers them
(``helpdesk.service.standard_composers``) beside the senders; a message on a channel without one is an
error, never another channel's answer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from helpdesk.messages import InboundMessage, OutboundMessage
from helpdesk.outbox import new_message_id
from helpdesk.usecases.errors import DeskError

if TYPE_CHECKING:
    from helpdesk.db.models import Ticket


_REFERRAL_MESSAGE_ID_RE = re.compile(r"\.tscc-r([1-9][0-9]{0,11})@[^>]*>?\s*$")


class UnknownChannel(DeskError, LookupError):
    """A message or a ticket names a channel no composer is registered for."""

    def __init__(self, channel: str) -> None:
        super().__init__(
            f"no composer for channel {channel!r}: register one in helpdesk.service.standard_composers"
        )
        self.channel = channel


@dataclass(frozen=True, slots=True)
class ReceiptRules:
    """Which of the desk's limits apply to what it says automatically on a channel."""

    # A requester holds at most Desk.limits.max_open_tickets active tickets; beyond it a request joins the
    # newest and the acknowledgement lists them (a chat makes opening tickets cheap).
    open_ticket_cap: bool = False
    # Follow-ups are acknowledged too, a few per ticket per minute (Desk.limits.receipts_per_minute).
    followup_receipts_per_ticket: bool = False
    # Every automatic message counts against its recipient's hourly limit (RFC 3834 §2,
    # Desk.mail_ack_limit_per_hour), so a mail loop or a flood gets a few.
    per_recipient_hourly_limit: bool = False


@dataclass(frozen=True, slots=True)
class Acknowledgement:
    """Everything the one answer to one inbound message must say (what the desk also has to tell the
    sender goes inside it, never in a second message)."""

    ticket: Ticket
    inbound: InboundMessage
    created: bool
    # Resources matched for a new ticket, in the requester's language.
    resources: tuple[dict[str, str], ...] = ()
    # The requester's open tickets when they hold the most allowed (the message joined the first).
    crowded: tuple[Ticket, ...] = ()

    @property
    def kind(self) -> str:
        return "acknowledgement" if self.created else "notice"


@dataclass(frozen=True, slots=True)
class ExpertLetter:
    """What the desk tells an expert about a referral (``kind``: "offer", "reminder" or "introduction").

    The requester's contact is in ``contact`` only for an introduction, which needs their consent first.
    """

    kind: str
    referral_id: int
    recipient: str
    language: str
    reference: str
    # Names the referral in the subject, ``[TSCC-2026-0042 R7]``, as ``referral_message_id`` names it in
    # the Message-ID: the expert's answer is threaded by either.
    tag: str
    summary: str
    targets: tuple[str, ...] = ()
    party: str | None = None
    covering_message: str | None = None
    # A signed address for the answer (email), and one-click links per answer when the web is configured.
    reply_to: str | None = None
    links: dict[str, str] | None = None
    contact: dict[str, str] | None = None
    # The offer's Message-ID, which a reminder continues.
    in_reply_to: str | None = None


def referral_message_id(domain: str, referral_id: int) -> str:
    """A Message-ID naming its referral, so an answer's In-Reply-To finds it without a look-up per mail."""
    return new_message_id(domain, idstring=f"tscc-r{referral_id}")


def referral_of_message_id(message_id: str) -> int | None:
    found = _REFERRAL_MESSAGE_ID_RE.search(message_id)
    return int(found.group(1)) if found else None


class ChannelComposer(Protocol):
    """One channel's wording and addressing; renders templates only, sends nothing."""

    receipts: ReceiptRules

    def actor(self, inbound: InboundMessage) -> str:
        """Who wrote ``inbound``, as the audit trail names them."""
        ...

    def acknowledgement(self, ack: Acknowledgement, *, mail_domain: str) -> OutboundMessage | None:
        """The answer to ``ack.inbound``, or None when this channel has nothing to say (or nowhere to)."""
        ...

    def reply(self, ticket: Ticket, text: str, *, mail_domain: str) -> OutboundMessage:
        """A staff member's ``text`` for the requester of ``ticket`` (messages and requester loaded);
        raises ``helpdesk.usecases.errors.NoRoute`` when the requester cannot be reached on it."""
        ...

    def consent_question(
        self, ticket: Ticket, text: str, referral_id: int, *, mail_domain: str
    ) -> OutboundMessage:
        """The requester's consent to an introduction asked as a reply (``text``); where the channel can, it
        also offers a yes and a no to press, naming ``referral_id``."""
        ...

    def expert(self, letter: ExpertLetter, *, mail_domain: str) -> OutboundMessage:
        """A referral's offer, reminder or introduction for an expert reached on this channel."""
        ...
