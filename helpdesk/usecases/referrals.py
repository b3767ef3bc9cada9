"""Referring a ticket to an expert of the roster, and the expert's answer (issue #14).

A referral is offered → accepted | declined | no_answer. The offer goes on the expert's own channel
(Telegram when the roster gives their Telegram id and they have started the bot, else email) in their
language, through that channel's composer (``ExpertLetter``); the requester's contact is not in it.
Whatever the expert writes back is kept on the ticket as an "expert" message: staff see it, the requester
never gets it by itself. Which inbound message is an expert's answer is decided in
``helpdesk.usecases.threading_rules`` (``REFERRAL_RULES``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from helpdesk.composer import ExpertLetter
from helpdesk.db.models import Message, Referral, Requester, Ticket
from helpdesk.db.types import utcnow
from helpdesk.desk import Desk
from helpdesk.messages import InboundMessage
from helpdesk.outbox import enqueue
from helpdesk.rendering import LANGUAGES
from helpdesk.usecases import events
from helpdesk.usecases.answer_words import read_answer
from helpdesk.usecases.errors import DeskError, InvalidTransition, NoRoute
from helpdesk.usecases.knowledge_state import current_triage
from helpdesk.usecases.load import expert_load
from helpdesk.usecases.referral_tokens import link_key, link_token, reply_key, reply_token
from helpdesk.usecases.reply_addresses import reply_address
from helpdesk.usecases.tickets import audit, get_ticket, store_inbound
from knowledge.models import Expert

OFFERED, ACCEPTED, DECLINED, NO_ANSWER = "offered", "accepted", "declined", "no_answer"
STATES = (OFFERED, ACCEPTED, DECLINED, NO_ANSWER)
# Still taking the expert's time: counted in their load (``referral_load``) and against max_open_tickets.
OPEN = or_(Referral.state == OFFERED, and_(Referral.state == ACCEPTED, Referral.outcome.is_(None)))
# The staff card's Refer button and the web's Refer form offer this many of the ticket's matched experts.
TOP_EXPERTS_OFFERED = 3
# One-click answer links stay valid this long (the no-answer deadline is twice the reminder delay anyway).
LINK_LIFETIME = timedelta(days=30)


class UnknownExpert(DeskError, LookupError):
    pass


@dataclass(frozen=True, slots=True)
class ReferralSettings:
    """What the desk needs besides the database: the web's address for one-click links (optional)."""

    web_base_url: str | None = None


def referral_tag(reference: str, referral_id: int) -> str:
    return f"{reference} R{referral_id}"


async def roster_experts(desk: Desk, session: AsyncSession) -> dict[str, Expert]:
    triage = await current_triage(desk, session)
    return {expert.id: expert for expert in triage.kb.experts}


def _language(expert: Expert) -> str:
    return next((language for language in expert.languages if language in LANGUAGES), "en")


async def _route(session: AsyncSession, expert: Expert) -> tuple[str, str]:
    """(channel, recipient): Telegram once they have started the bot, else their email."""
    if expert.telegram_id is not None:
        started = await session.scalar(
            select(Requester.id).where(
                Requester.telegram_user_id == expert.telegram_id, Requester.telegram_chat_id.is_not(None)
            )
        )
        if started is not None:
            return "telegram", str(expert.telegram_id)
    if expert.email:
        return "email", expert.email.lower()
    raise NoRoute(f"expert {expert.id} has no email and has not started the bot")


def _targets(ticket: Ticket) -> tuple[str, ...]:
    found = (ticket.classification or {}).get("targets") or []
    return tuple(str(t.get("number", t)) if isinstance(t, dict) else str(t) for t in found[:3])


async def letter_for(
    desk: Desk, session: AsyncSession, referral: Referral, kind: str, *, web_base_url: str | None = None
) -> ExpertLetter:
    ticket = referral.ticket
    links = None
    if web_base_url and kind != "introduction":
        key = await link_key(session)
        expires = referral.offered_at + LINK_LIFETIME
        base = web_base_url.rstrip("/")
        # The page answers in the letter's language (the expert may read it in a browser set to another).
        lang = f"?lang={referral.language}" if referral.language in LANGUAGES else ""
        links = {
            a: f"{base}/referrals/answer/{link_token(key, referral.id, a, expires)}{lang}"
            for a in ("yes", "no")
        }
    reply_to = None
    if referral.channel == "email" and desk.mail_from:
        token = reply_token(await reply_key(session), referral.id, referral.recipient)
        reply_to = reply_address(desk.mail_from, token)
    return ExpertLetter(
        kind=kind,
        referral_id=referral.id,
        recipient=referral.recipient,
        language=referral.language,
        reference=ticket.reference,
        tag=referral_tag(ticket.reference, referral.id),
        summary=ticket.subject,
        targets=_targets(ticket),
        party=ticket.party,
        covering_message=referral.covering_message,
        reply_to=reply_to,
        links=links,
        in_reply_to=referral.channel_message_id if kind != "offer" else None,
    )


async def send_letter(
    desk: Desk, session: AsyncSession, referral: Referral, letter: ExpertLetter
) -> str | None:
    """Queue ``letter`` in the outbox (kept on the ticket as a note-like "expert" record); its Message-ID."""
    outbound = desk.composer(referral.channel).expert(letter, mail_domain=desk.mail_domain)
    message = Message(
        ticket=referral.ticket,
        kind="to_expert",
        channel=referral.channel,
        author="helpdesk",
        subject=outbound.subject,
        body=outbound.text,
        channel_message_id=outbound.message_id,
    )
    session.add(message)
    await enqueue(session, referral.ticket, message, outbound)
    return outbound.message_id


async def refer(
    desk: Desk,
    reference: str,
    expert_ids: list[str],
    *,
    message: str | None,
    actor: str,
    organisation: str | None = None,
    settings: ReferralSettings | None = None,
) -> list[Referral]:
    """Offer the ticket to each expert in ``expert_ids`` and, as a group, to every available expert of the
    provider ``organisation``; refused as a whole when one of them cannot be offered."""
    # The desk's own web address unless told otherwise: every caller (CLI, staff card, web) then sends the
    # one-click links once the workspace is configured.
    settings = settings or ReferralSettings(web_base_url=desk.web_base_url)
    covering = (message or "").strip() or None
    made: list[Referral] = []
    async with desk.sessions.begin() as session:
        ticket = await get_ticket(session, reference, for_update=True)
        roster = await roster_experts(desk, session)
        if organisation is not None:
            members = [
                e.id
                for e in roster.values()
                if e.organisation.casefold() == organisation.strip().casefold()
                and e.availability != "unavailable"
            ]
            if not members:
                raise UnknownExpert(f"no available expert of {organisation!r} in the roster")
            expert_ids = [*expert_ids, *members]
        if not expert_ids:
            raise InvalidTransition("name an expert or an organisation to refer to")
        for expert_id in dict.fromkeys(expert_ids):
            expert = roster.get(expert_id)
            if expert is None:
                raise UnknownExpert(f"no expert {expert_id!r} in the roster")
            if expert.availability == "unavailable":
                raise InvalidTransition(f"expert {expert_id} is marked unavailable in the roster")
            open_already = await session.scalar(
                select(Referral.id).where(
                    Referral.ticket_id == ticket.id,
                    Referral.expert_id == expert_id,
                    Referral.state.in_((OFFERED, ACCEPTED)),
                )
            )
            if open_already is not None:
                raise InvalidTransition(f"{ticket.reference} is already referred to expert {expert_id}")
            held = (await expert_load(session)).get(expert.id, 0) + await session.scalar(
                select(func.count()).where(OPEN, Referral.expert_id == expert.id)
            )
            if held >= expert.max_open_tickets:
                raise InvalidTransition(
                    f"expert {expert_id} already holds {held} open tickets and referrals "
                    f"(max_open_tickets {expert.max_open_tickets})"
                )
            channel, recipient = await _route(session, expert)
            referral = Referral(
                ticket=ticket,
                expert_id=expert.id,
                organisation=expert.organisation or None,
                channel=channel,
                recipient=recipient,
                language=_language(expert),
                covering_message=covering,
                state=OFFERED,
                created_by=actor,
                offered_at=utcnow(),
            )
            session.add(referral)
            await session.flush()  # the letter's tag and signed address name the referral's id
            letter = await letter_for(desk, session, referral, "offer", web_base_url=settings.web_base_url)
            referral.channel_message_id = await send_letter(desk, session, referral, letter)
            audit(session, ticket, actor, "referred", referral=referral.id, expert=expert.id, channel=channel)
            made.append(referral)
        ticket.updated_at = utcnow()
        await events.record(desk, session, events.ReferralChanged(ticket))
    desk.outbox_written()
    return made


async def record_expert_message(
    desk: Desk, session: AsyncSession, referral: Referral, inbound: InboundMessage
) -> None:
    """Keep the expert's message on the ticket (staff only) and move the referral by its yes or no."""
    ticket = referral.ticket
    store_inbound(session, ticket, inbound, kind="expert", author=f"expert:{referral.expert_id}")
    now = inbound.received_at or utcnow()
    actor = f"expert:{referral.expert_id}"
    audit(session, ticket, actor, "expert_message", referral=referral.id)
    if inbound.automatic:
        return  # an out-of-office says nothing about yes or no
    if referral.first_answer_at is None:
        referral.first_answer_at = now
    answer = read_answer(inbound.stripped_text or inbound.text)
    if answer is not None:
        answer_referral(session, referral, answer, now=now, actor=actor)
    ticket.updated_at = utcnow()
    await session.flush()
    await events.record(desk, session, events.ReferralChanged(ticket))


async def locked_referral(session: AsyncSession, referral_id: int) -> tuple[Ticket, Referral] | None:
    """A referral and its ticket (with its requester), both locked in the desk's order: the ticket's row
    first (as ``introduce`` and intake take it), then the referral read again under its lock. None when
    there is no such referral (an id from a button is the client's to forge). The ticket's messages are not
    read: a press needs none, and their attachments' bytes would come with them."""
    referral = await session.get(Referral, referral_id)
    if referral is None:
        return None
    ticket = await session.get_one(
        Ticket,
        referral.ticket_id,
        with_for_update=True,
        populate_existing=True,
        options=[selectinload(Ticket.requester)],
    )
    await session.refresh(referral, with_for_update=True)
    return ticket, referral


def answer_referral(
    session: AsyncSession, referral: Referral, answer: str, *, now: datetime, actor: str
) -> bool:
    """Move an offered (or unanswered) referral by the expert's yes or no; False when it was answered."""
    if referral.state not in (OFFERED, NO_ANSWER):
        return False
    referral.state = ACCEPTED if answer == "yes" else DECLINED
    referral.answered_at = now
    if referral.first_answer_at is None:
        referral.first_answer_at = now
    audit(session, referral.ticket, actor, f"referral_{referral.state}", referral=referral.id)
    return True
