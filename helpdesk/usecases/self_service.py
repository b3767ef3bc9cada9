"""What a requester can do about their own profile and tickets from a chat: language, Party, status, edits.

Requesters are identified by the channel's own user id (Telegram), never by a reference alone: a
reference someone types only shows a ticket that is theirs.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk import lifecycle
from helpdesk.db.models import Message, Requester, Ticket
from helpdesk.db.types import utcnow
from helpdesk.desk import Desk
from helpdesk.language import detect_reply_language
from helpdesk.messages import InboundMessage, Sender, storable
from helpdesk.references import find_reference
from helpdesk.rendering import LANGUAGES
from helpdesk.usecases import events
from helpdesk.usecases.errors import InvalidTransition
from helpdesk.usecases.read_ahead import SHARING
from helpdesk.usecases.requesters import find_or_create_requester
from helpdesk.usecases.threading_rules import chat_open_tickets
from helpdesk.usecases.tickets import audit
from knowledge.models import PARTY_CODES

__all__ = [
    "STALE_AFTER",
    "Profile",
    "TicketBrief",
    "chat_migrated",
    "edit_message",
    "followup_choices",
    "own_ticket",
    "own_tickets",
    "profile",
    "requester_blocked",
    "set_language",
    "set_party",
]

# A follow-up to a ticket untouched this long is more likely a new request: the requester is asked.
STALE_AFTER = timedelta(days=7)
# Telegram language codes that name one Party unambiguously (Russian is spoken in all nine).
_PARTY_BY_LANGUAGE = {
    "hy": "AM",
    "az": "AZ",
    "be": "BY",
    "kk": "KZ",
    "ky": "KG",
    "tg": "TJ",
    "tk": "TM",
    "uz": "UZ",
}


@dataclass(frozen=True, slots=True)
class Profile:
    language: str
    language_chosen: bool
    party: str | None


@dataclass(frozen=True, slots=True)
class TicketBrief:
    reference: str
    subject: str
    status: str
    updated_at: datetime
    created_at: datetime
    messages: int = 0
    last_reply: str | None = None


def _brief(ticket: Ticket, messages: list[Message] | None = None) -> TicketBrief:
    messages = messages or []
    replies = [m for m in messages if m.kind == "outbound" and not m.automatic]
    return TicketBrief(
        reference=ticket.reference,
        subject=ticket.subject,
        status=ticket.status,
        updated_at=ticket.updated_at,
        created_at=ticket.created_at,
        messages=sum(1 for m in messages if m.kind == "inbound"),
        last_reply=replies[-1].body if replies else None,
    )


async def _requester(session: AsyncSession, sender: Sender) -> Requester:
    language = detect_reply_language("", sender.language)
    requester = await find_or_create_requester(session, sender, language)
    if requester.party is None and sender.language:
        # "kk" tells Kazakhstan; the Party can still be changed with /start.
        requester.party = _PARTY_BY_LANGUAGE.get(sender.language.lower().split("-")[0])
    return requester


async def profile(desk: Desk, sender: Sender) -> Profile:
    """The requester's profile, creating the requester on first contact (/start)."""
    async with desk.sessions.begin() as session:
        requester = await _requester(session, sender)
        return Profile(requester.language or "ru", requester.language_chosen, requester.party)


async def set_language(desk: Desk, sender: Sender, language: str) -> Profile:
    """The requester's chosen language: it wins over detection from then on, for open tickets too."""
    if language not in LANGUAGES:
        raise InvalidTransition(f"unsupported language {language!r}")
    async with desk.sessions.begin() as session:
        requester = await _requester(session, sender)
        requester.language = language
        requester.language_chosen = True
        for ticket in await _active(session, requester):
            if ticket.language != language:
                audit(
                    session, ticket, _actor(sender), "language", previous=ticket.language, language=language
                )
                ticket.language = language
                await events.record(desk, session, events.RequesterChanged(ticket))
        result = Profile(language, True, requester.party)
    desk.outbox_written()
    return result


async def set_party(desk: Desk, sender: Sender, party: str) -> Profile:
    party = party.upper()
    if party not in PARTY_CODES:
        raise InvalidTransition(f"unknown Party {party!r}")
    async with desk.sessions.begin() as session:
        requester = await _requester(session, sender)
        requester.party = party
        for ticket in await _active(session, requester):
            if ticket.party is None:
                audit(session, ticket, _actor(sender), "party", party=party)
                ticket.party = party
                await events.record(desk, session, events.RequesterChanged(ticket))
        result = Profile(requester.language or "ru", requester.language_chosen, party)
    desk.outbox_written()
    return result


def _actor(sender: Sender) -> str:
    return f"telegram:{sender.telegram_user_id}"


async def _active(session: AsyncSession, requester: Requester) -> list[Ticket]:
    """Their active tickets, locked as forget locks them: the requester row first (shared, as intake
    shares it), then the tickets by id (docs/reliability.md, lock order)."""
    await session.execute(select(Requester.id).where(Requester.id == requester.id).with_for_update(**SHARING))
    return list(
        await session.scalars(
            select(Ticket)
            .where(Ticket.requester_id == requester.id, Ticket.status.in_(lifecycle.ACTIVE))
            .order_by(Ticket.id)
            .with_for_update()
        )
    )


async def _requester_by_user(session: AsyncSession, telegram_user_id: int) -> Requester | None:
    return await session.scalar(select(Requester).where(Requester.telegram_user_id == telegram_user_id))


async def own_tickets(desk: Desk, telegram_user_id: int, *, limit: int = 10) -> list[TicketBrief]:
    """The requester's tickets, most recently active first (for /status)."""
    async with desk.sessions() as session:
        requester = await _requester_by_user(session, telegram_user_id)
        if requester is None:
            return []
        tickets = await session.scalars(
            select(Ticket)
            .where(Ticket.requester_id == requester.id)
            .order_by(Ticket.updated_at.desc(), Ticket.id.desc())
            .limit(limit)
        )
        return [_brief(t) for t in tickets]


async def own_ticket(desk: Desk, telegram_user_id: int, reference: str) -> TicketBrief | None:
    """One of the requester's tickets with its last answer; None when it is not theirs (or does not exist)."""
    normalised = find_reference(reference)
    if normalised is None:
        return None
    async with desk.sessions() as session:
        requester = await _requester_by_user(session, telegram_user_id)
        if requester is None:
            return None
        ticket = await session.scalar(
            select(Ticket).where(Ticket.reference == normalised, Ticket.requester_id == requester.id)
        )
        if ticket is None:
            return None
        messages = list(
            await session.scalars(select(Message).where(Message.ticket_id == ticket.id).order_by(Message.id))
        )
        return _brief(ticket, messages)


async def followup_choices(session: AsyncSession, inbound: InboundMessage) -> list[TicketBrief]:
    """The tickets to offer when it is unclear which one a message continues; empty when it is clear.

    Clear: the message names or answers a ticket, asks for a new one, the requester has no open ticket in
    this chat, or exactly one that is not stale. Read in the caller's transaction (the one that receives
    the message), so the answer and the receiving see the same tickets.
    """
    user_id = inbound.sender.telegram_user_id
    if inbound.force_new or inbound.continues or user_id is None:
        return []
    if find_reference(inbound.text) or (inbound.replies_to and await _answers_ours(session, inbound)):
        return []
    tickets = await chat_open_tickets(session, inbound)
    if not tickets:
        return []
    if len(tickets) == 1 and utcnow() - tickets[0].updated_at < STALE_AFTER:
        return []
    return [_brief(t) for t in tickets]


async def _answers_ours(session: AsyncSession, inbound: InboundMessage) -> bool:
    found = await session.scalar(
        select(Message.id).where(Message.channel_message_id.in_(inbound.replies_to)).limit(1)
    )
    return found is not None


async def edit_message(
    desk: Desk, channel: str, channel_message_id: str, text: str, *, actor: str
) -> str | None:
    """The requester edited a message: store the new text (the old one stays in the audit trail).

    Returns the ticket's reference, or None when the message was never stored (nothing to update).
    """
    text = storable(text)  # the same cleaning as a new message: PostgreSQL refuses NUL in text
    async with desk.sessions.begin() as session:
        message = await session.scalar(
            select(Message).where(
                Message.channel == channel,
                Message.kind == "inbound",
                Message.channel_message_id == channel_message_id,
            )
        )
        if message is None or message.body == text:
            return None
        ticket = await session.get_one(Ticket, message.ticket_id, with_for_update=True)
        audit(session, ticket, actor, "edited", message_id=message.id, previous=message.body)
        message.body = text
        ticket.updated_at = utcnow()
        await events.record(desk, session, events.RequesterChanged(ticket))
        reference = ticket.reference
    desk.outbox_written()
    return reference


async def requester_blocked(desk: Desk, telegram_user_id: int, *, blocked: bool) -> list[str]:
    """The requester blocked (or unblocked) the bot: note it on their open tickets for staff."""
    async with desk.sessions.begin() as session:
        requester = await _requester_by_user(session, telegram_user_id)
        if requester is None:
            return []
        tickets = await _active(session, requester)
        for ticket in tickets:
            audit(
                session, ticket, f"telegram:{telegram_user_id}", "blocked_bot" if blocked else "unblocked_bot"
            )
            await events.record(desk, session, events.RequesterChanged(ticket))
        references = [t.reference for t in tickets]
    desk.outbox_written()
    return references


async def chat_migrated(desk: Desk, old_chat_id: int, new_chat_id: int) -> int:
    """A group became a supergroup with a new id: answers must go to the new chat."""
    async with desk.sessions.begin() as session:
        result = await session.execute(
            update(Ticket).where(Ticket.telegram_chat_id == old_chat_id).values(telegram_chat_id=new_chat_id)
        )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
