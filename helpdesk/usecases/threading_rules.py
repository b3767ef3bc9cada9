"""Which ticket an inbound message belongs to, for every channel: the one home of the threading rules.

Two ordered lists kept as data (after GNU Mailman's rules and chains):

- ``CANDIDATE_RULES`` name the tickets a message may continue, most explicit first: the requester's own
  choice (Telegram buttons), the ``[TSCC-…]`` tag in the subject, a bare reference in the subject, a
  reference in the body, In-Reply-To/References, a signed reply address, the chat's open request.
  The bracketed tag comes before a reference quoted in text: "Re: about TSCC-2026-0001 [TSCC-2026-0042]"
  continues 0042.
- ``ROLE_RULES`` decide whether the sender may join a candidate: its requester, a participant (an address
  that was on To/Cc of the ticket's mail) or proven staff (the proof itself stays in
  ``helpdesk.usecases.staff_mail``). Someone else's reference never lets a stranger join a ticket: their
  message opens a new ticket with a visible "possible follow-up of …" note.

Before both, ``REFERRAL_RULES`` decide whether the message is an expert's answer to a referral (issue #14):
the signed reply address of the offer, the referral tag ``[TSCC-… R7]`` in the subject, In-Reply-To of the
offer, or (Telegram) the expert's chat while an offer is open. The sender must be the very address or
Telegram id the offer went to, and mail the trusted server failed is not an answer: a forged sender gets
nothing attached to the referred ticket and its mail goes down the ordinary rules like anyone's.

Automatic mail (bounces, out-of-office) belongs to the first candidate whoever sent it: it is never
acknowledged and never reopens anything. Trust (issue 10): a staff address acts as staff only when proven;
mail the trusted mail server failed that claims to be the requester or a participant is kept, marked
unverified, and changes nothing.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import Select, bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import contains_eager

from helpdesk import lifecycle
from helpdesk.composer import referral_of_message_id
from helpdesk.db.models import Message, Referral, Requester, Ticket, TicketParticipant
from helpdesk.db.transaction_memo import once_per_transaction, transaction_values
from helpdesk.desk import Desk
from helpdesk.messages import InboundMessage
from helpdesk.references import REFERENCE_RE, find_reference
from helpdesk.usecases.acknowledge import RECEIPTS_SENT_PER_TICKET, receipt_parameters, receipts_read_along
from helpdesk.usecases.merge import surviving
from helpdesk.usecases.one_flush import before_touching
from helpdesk.usecases.read_ahead import SHARING, answered_or_read, remember
from helpdesk.usecases.referral_tokens import reply_key, reply_token_proves, reply_token_referral
from helpdesk.usecases.reply_addresses import token_ticket_id
from helpdesk.usecases.staff_mail import claims_staff, server_vouches, staff_proof

Role = Literal["requester", "participant", "staff", "automatic"]

_TAG_RE = re.compile(r"\[\s*(" + REFERENCE_RE.pattern + r")\s*\]", re.IGNORECASE)
_REFERRAL_TAG_RE = re.compile(r"\[\s*" + REFERENCE_RE.pattern + r"\s+R([1-9][0-9]{0,11})\s*\]", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Thread:
    """Where an inbound message belongs."""

    # The ticket it continues (None: open a new one) and why the sender may continue it.
    ticket: Ticket | None = None
    role: Role | None = None
    # A ticket the message refers to but whose sender may not join it: noted on the new ticket.
    possible_followup_of: str | None = None
    # A staff member's (person-written, proven) mail on this ticket: relay it to the requester.
    staff_ticket: Ticket | None = None
    # Mail from a staff address without proof: handled as a stranger's, marked, the staff group alerted.
    unverified_staff: bool = False
    # The trusted mail server failed the sender of a follow-up: kept, marked, changes nothing.
    unverified_sender: bool = False

    @property
    def changes_ticket(self) -> bool:
        """Whether the message may reopen the ticket, move it on, or add participants."""
        return not self.unverified_sender


@dataclass(frozen=True, slots=True)
class Context:
    desk: Desk
    session: AsyncSession
    inbound: InboundMessage
    requester: Requester


# --- which tickets a message may continue ----------------------------------------------------------------


def tagged_reference(subject: str | None) -> str | None:
    """The reference in a ``[TSCC-…]`` tag of the subject, or None."""
    tagged = _TAG_RE.search(subject or "")
    return find_reference(tagged.group(1)) if tagged is not None else None


def subject_reference(subject: str | None) -> str | None:
    """The ticket reference a subject carries: the ``[TSCC-…]`` tag first, else a bare reference."""
    return tagged_reference(subject) or find_reference(subject)


async def _by_reference(context: Context, reference: str | None) -> list[Ticket]:
    if reference is None:
        return []
    ticket = await context.session.scalar(select(Ticket).where(Ticket.reference == reference))
    return [await surviving(context.session, ticket)] if ticket is not None else []


async def _chosen(context: Context) -> list[Ticket]:
    return await _by_reference(context, find_reference(context.inbound.continues))


async def _subject_tag(context: Context) -> list[Ticket]:
    return await _by_reference(context, tagged_reference(context.inbound.subject))


async def _subject_bare(context: Context) -> list[Ticket]:
    return await _by_reference(context, find_reference(context.inbound.subject))


async def _body_reference(context: Context) -> list[Ticket]:
    return await _by_reference(context, find_reference(context.inbound.text))


async def _replied_message(context: Context) -> list[Ticket]:
    if not context.inbound.replies_to:
        return []
    ticket = await context.session.scalar(
        select(Ticket)
        .join(Message, Message.ticket_id == Ticket.id)
        .where(Message.channel_message_id.in_(context.inbound.replies_to))
        .order_by(Message.id.desc())
        .limit(1)
    )
    return [ticket] if ticket is not None else []


async def _reply_address(context: Context) -> list[Ticket]:
    # A signed reply address names its ticket even when the subject lost the tag.
    found: list[Ticket] = []
    for token in context.inbound.reply_tokens:
        ticket_id = token_ticket_id(token)
        ticket = await context.session.get(Ticket, ticket_id) if ticket_id is not None else None
        if ticket is not None:
            found.append(await surviving(context.session, ticket))
    return found


# The sender's active tickets in a chat, each with its receipts of the last minute (a follow-up's receipt
# limit, :mod:`helpdesk.usecases.acknowledge`, then needs no statement of its own). A lone message reads them
# with its other first look-ups (:mod:`helpdesk.usecases.lone_read`), as a derived table of these rows.
def _chat_open_tickets(*columns: Any) -> Select[Any]:
    return (
        select(*columns)
        .join(Requester, Requester.id == Ticket.requester_id)
        .where(
            Requester.telegram_user_id == bindparam("user"),
            Ticket.telegram_chat_id == bindparam("chat"),
            Ticket.status.in_(lifecycle.ACTIVE),
        )
        .order_by(Ticket.updated_at.desc(), Ticket.id.desc())
        .limit(5)
        .with_for_update(of=Requester, **SHARING)
    )


_CHAT_OPEN_TICKETS = _chat_open_tickets(Ticket, RECEIPTS_SENT_PER_TICKET).options(
    contains_eager(Ticket.requester)
)
# The same rows as columns of a derived table (ticket, requester, receipts: ``receipts_sent``).
CHAT_OPEN_TICKETS_ROWS = _chat_open_tickets(
    Ticket, Requester, RECEIPTS_SENT_PER_TICKET.label("receipts_sent")
)


def _chat_key(inbound: InboundMessage) -> str:
    return f"chat_open_tickets:{inbound.channel}:{inbound.channel_message_id}"


async def chat_open_tickets(session: AsyncSession, inbound: InboundMessage) -> list[Ticket]:
    """The sender's active tickets in this chat, most recently changed first (at most 5).

    The first is the chat's open request; a Telegram follow-up question offers them all. Read once per
    message: the question's check and the threading of the same message share it."""
    user, chat = inbound.sender.telegram_user_id, inbound.sender.telegram_chat_id
    if user is None or chat is None:
        return []

    async def read() -> list[Ticket]:
        receipts = receipt_parameters(inbound.channel)
        rows = await session.execute(_CHAT_OPEN_TICKETS, {"user": user, "chat": chat, **receipts})
        return keep_chat_open_tickets(session, inbound, [(ticket, sent) for ticket, sent in rows], receipts)

    return await once_per_transaction(session, _chat_key(inbound), read)


def keep_chat_open_tickets(
    session: AsyncSession, inbound: InboundMessage, rows: list[tuple[Ticket, int]], receipts: dict[str, Any]
) -> list[Ticket]:
    """What a read of ``inbound``'s chat's open tickets brought along, kept for that message (each ticket's
    receipt count, the sender's requester row); the tickets are the message's answer for the transaction."""
    tickets: list[Ticket] = []
    for ticket, sent in rows:
        tickets.append(ticket)
        receipts_read_along(session, inbound, ticket, sent, receipts)
    if tickets:
        # The sender's requester row came with them (one per Telegram user): receiving the same message
        # needs no look-up of its own.
        remember(session, "telegram_requester", inbound.sender.telegram_user_id, tickets[0].requester)
    transaction_values(session)[_chat_key(inbound)] = tickets
    return tickets


async def _chat_open_ticket(context: Context) -> list[Ticket]:
    # A chat is a conversation: a new message continues the requester's open request in that chat.
    return (await chat_open_tickets(context.session, context.inbound))[:1]


CandidateRule = Callable[[Context], Awaitable[list[Ticket]]]

# Most explicit first; the first candidate the sender may join wins.
CANDIDATE_RULES: tuple[tuple[str, CandidateRule], ...] = (
    ("requester's choice", _chosen),
    ("subject tag", _subject_tag),
    ("subject reference", _subject_bare),
    ("body reference", _body_reference),
    ("In-Reply-To/References", _replied_message),
    ("signed reply address", _reply_address),
    ("chat's open request", _chat_open_ticket),
)


async def candidates(context: Context) -> list[Ticket]:
    """Every ticket the message may continue, in the order of ``CANDIDATE_RULES``, each once."""
    found: list[Ticket] = []
    for _name, rule in CANDIDATE_RULES:
        for ticket in await rule(context):
            if ticket not in found:
                found.append(ticket)
    return found


# --- whether the sender may join a candidate -------------------------------------------------------------

# A role rule answers True (the sender has this role), False (the sender may not join: stop) or None
# (not decided: ask the next rule).
RoleRule = Callable[[Context, Ticket], Awaitable[bool | None]]


async def _is_requester(context: Context, ticket: Ticket) -> bool | None:
    return True if ticket.requester_id == context.requester.id else None


async def _is_proven_staff(context: Context, ticket: Ticket) -> bool | None:
    if not await claims_staff(context.desk, context.session, context.inbound):
        return None
    # Only a proven staff mail acts as staff; an unproven one is a stranger's (see staff_mail).
    return await staff_proof(context.desk, context.session, ticket, context.inbound)


async def _is_participant(context: Context, ticket: Ticket) -> bool | None:
    address = (context.inbound.sender.email or "").lower()
    if not address:
        return None
    participant = await context.session.scalar(
        select(TicketParticipant.id).where(
            TicketParticipant.ticket_id == ticket.id, TicketParticipant.email == address
        )
    )
    return True if participant is not None else None


ROLE_RULES: tuple[tuple[Role, RoleRule], ...] = (
    ("requester", _is_requester),
    ("staff", _is_proven_staff),
    ("participant", _is_participant),
)


async def sender_role(context: Context, ticket: Ticket) -> Role | None:
    for role, rule in ROLE_RULES:
        decided = await rule(context, ticket)
        if decided is not None:
            return role if decided else None
    return None


# --- whether the message is an expert's answer to a referral -------------------------------------------


async def _referral_reply_address(session: AsyncSession, inbound: InboundMessage) -> list[Referral]:
    found: list[Referral] = []
    for token in inbound.reply_tokens:
        referral_id = reply_token_referral(token)
        referral = await session.get(Referral, referral_id) if referral_id is not None else None
        if referral is not None and reply_token_proves(
            await reply_key(session), token, referral.id, referral.recipient
        ):
            found.append(referral)
    return found


async def _referral_tag(session: AsyncSession, inbound: InboundMessage) -> list[Referral]:
    tagged = _REFERRAL_TAG_RE.search(inbound.subject or "")
    referral = await session.get(Referral, int(tagged.group(tagged.lastindex or 1))) if tagged else None
    return [referral] if referral is not None else []


async def _referral_replied(session: AsyncSession, inbound: InboundMessage) -> list[Referral]:
    # The desk's letters to experts carry the referral in their Message-ID: only such a reply costs a look-up.
    found: list[Referral] = []
    for message_id in inbound.replies_to:
        referral_id = referral_of_message_id(message_id)
        referral = await session.get(Referral, referral_id) if referral_id is not None else None
        if referral is not None and referral not in found:
            found.append(referral)
    return found


OPEN_OFFER = (
    select(Referral)
    .where(
        Referral.channel == "telegram",
        Referral.recipient == bindparam("recipient"),
        Referral.state == "offered",
    )
    .order_by(Referral.id.desc())
    .limit(1)
)


async def _referral_chat(session: AsyncSession, inbound: InboundMessage) -> list[Referral]:
    # In a chat there is nothing to reply to: the expert's open offer there is what they answer.
    user = inbound.sender.telegram_user_id
    if user is None or inbound.channel != "telegram":
        return []
    referral = await answered_or_read(
        session, "telegram_offer", str(user), OPEN_OFFER, {"recipient": str(user)}
    )
    return [referral] if referral is not None else []


ReferralRule = Callable[[AsyncSession, InboundMessage], Awaitable[list[Referral]]]

REFERRAL_RULES: tuple[tuple[str, ReferralRule], ...] = (
    ("signed reply address", _referral_reply_address),
    ("referral tag", _referral_tag),
    ("In-Reply-To of the offer", _referral_replied),
    ("expert's chat", _referral_chat),
)


def _sent_by_recipient(referral: Referral, inbound: InboundMessage) -> bool:
    if referral.channel != inbound.channel:
        return False
    if inbound.channel == "telegram":
        return str(inbound.sender.telegram_user_id) == referral.recipient
    address = (inbound.sender.email or "").strip().lower()
    return address == referral.recipient and inbound.authenticity.verdict != "failed"


async def find_referral(session: AsyncSession, inbound: InboundMessage) -> Referral | None:
    """The referral ``inbound`` answers, when its sender is the one the offer went to; else None."""
    for _name, rule in REFERRAL_RULES:
        for referral in await rule(session, inbound):
            if _sent_by_recipient(referral, inbound):
                return referral
    return None


# --- the decision ----------------------------------------------------------------------------------------


async def find_thread(
    desk: Desk, session: AsyncSession, inbound: InboundMessage, requester: Requester
) -> Thread:
    """Where ``inbound`` belongs; a message that asks for a new ticket belongs to none."""
    if inbound.force_new:
        return Thread()
    context = Context(desk, session, inbound, requester)
    found = await candidates(context)
    # Another message of this transaction may have changed one of them, its rows not yet written.
    await before_touching(session, found)
    # A staff address the Centre's own server vouches for is a staff member even on a ticket they do not
    # answer as staff (their own request, say); anything else from a staff address is unproven so far.
    unverified_staff = await claims_staff(desk, session, inbound) and not server_vouches(inbound)
    for ticket in found:
        role = await sender_role(context, ticket)
        if role == "staff" and ticket is not found[0]:
            # A mail that names one ticket must not act as staff on another one (a signed reply address
            # for ticket A under the subject of ticket B proves nothing about B, and relays nothing to A).
            role = None
        if role == "staff":
            unverified_staff = False
            if not inbound.automatic:
                return Thread(staff_ticket=ticket, role="staff")
        if role is not None:
            failed = role in ("requester", "participant") and inbound.authenticity.verdict == "failed"
            return Thread(
                ticket=ticket, role=role, unverified_staff=unverified_staff, unverified_sender=failed
            )
        if inbound.automatic:
            # A bounce or an out-of-office answering our mail belongs to that ticket, whoever sends it.
            return Thread(ticket=ticket, role="automatic", unverified_staff=unverified_staff)
    if found:
        return Thread(possible_followup_of=found[0].reference, unverified_staff=unverified_staff)
    return Thread(unverified_staff=unverified_staff)
