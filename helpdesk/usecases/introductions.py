"""After an expert accepts: the requester's consent, one introduction to both sides, the cooperation and
its outcome (issue #14 items 3 and 6).

Contact details cross only with the requester's recorded yes: ``introduce`` asks them on their own
channel, their answer (any language's usual yes/no, ``answer_words``) is recorded on the referral when it
arrives, and a yes sends the introduction at once, each side in their own language and channel. The
audit event of the introduction names the consent (its time and the message that gave it).
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk.db.models import Referral, Ticket
from helpdesk.db.types import utcnow
from helpdesk.desk import Desk
from helpdesk.messages import InboundMessage
from helpdesk.rendering import render
from helpdesk.usecases import events
from helpdesk.usecases.answer_words import read_answer
from helpdesk.usecases.errors import InvalidTransition
from helpdesk.usecases.referrals import ACCEPTED, letter_for, locked_referral, roster_experts, send_letter
from helpdesk.usecases.reply import reply_in_session
from helpdesk.usecases.tickets import audit, get_ticket

log = logging.getLogger(__name__)

OUTCOMES = ("advice", "training", "joint_project", "technology_transfer", "no_result")


async def _referral(session: AsyncSession, ticket: Ticket, expert_id: str | None) -> Referral:
    query = select(Referral).where(Referral.ticket_id == ticket.id).order_by(Referral.id.desc())
    if expert_id is not None:
        query = query.where(Referral.expert_id == expert_id)
    else:
        query = query.where(Referral.introduced_at.is_not(None))
    found = (await session.scalars(query)).unique().first()
    if found is None:
        named = f"expert {expert_id}" if expert_id else "an introduced expert"
        raise InvalidTransition(f"{ticket.reference} has no referral to {named}")
    return found


async def introduce(desk: Desk, reference: str, expert_id: str, *, actor: str) -> str:
    """Ask the requester's consent, or (consent given) introduce; what was done, as one line."""
    async with desk.sessions.begin() as session:
        ticket = await get_ticket(session, reference, for_update=True)
        referral = await _referral(session, ticket, expert_id)
        if referral.state != ACCEPTED:
            raise InvalidTransition(f"expert {expert_id} has not accepted ({referral.state})")
        if referral.introduced_at is not None:
            raise InvalidTransition(f"{ticket.reference} was already introduced to expert {expert_id}")
        if referral.consent == "no":
            raise InvalidTransition(f"the requester of {ticket.reference} declined the introduction")
        if referral.consent == "yes":
            await send_introduction(desk, session, referral, actor=actor)
            done = "introduction sent to both sides"
        elif referral.consent_asked_at is not None:
            raise InvalidTransition(f"waiting for the requester of {ticket.reference} to answer")
        else:
            question = render("referrals/consent.{lang}.txt.j2", ticket.language, organisation=_org(referral))
            await reply_in_session(desk, session, ticket, question, actor=actor, consent_for=referral.id)
            referral.consent_asked_at = utcnow()
            audit(session, ticket, actor, "consent_asked", referral=referral.id)
            done = "the requester was asked to agree"
        await events.record(desk, session, events.ReferralChanged(ticket))
    desk.outbox_written()
    return f"{reference}: {done}"


def _org(referral: Referral) -> str:
    return referral.organisation or "TSCC"


async def record_consent(desk: Desk, session: AsyncSession, ticket: Ticket, inbound: InboundMessage) -> None:
    """The requester's message on a ticket awaiting their consent: a yes or no is recorded (a yes then
    introduces); anything else leaves the question open."""
    # Read the words first: most messages are no yes or no, and cost no look-up.
    answer = None if inbound.automatic else read_answer(inbound.stripped_text or inbound.text)
    if answer is None:
        return
    waiting = (
        (
            await session.scalars(
                select(Referral).where(
                    Referral.ticket_id == ticket.id,
                    Referral.consent_asked_at.is_not(None),
                    Referral.consent.is_(None),
                )
            )
        )
        .unique()
        .all()
    )
    now = inbound.received_at or utcnow()
    for referral in waiting:
        await _consented(
            desk, session, ticket, referral, answer, now, message_channel_id=inbound.channel_message_id
        )


async def consent_pressed(desk: Desk, referral_id: int, telegram_user_id: int, answer: str) -> bool:
    """The requester pressed yes or no under the consent question (``TelegramComposer.consent_question``).

    Recorded as a typed answer is, when the presser is the ticket's requester and the question still waits
    for an answer; False otherwise (button data is the client's to forge: another user, another referral,
    a second press, an answer that is neither yes nor no)."""
    if answer not in ("yes", "no"):
        return False
    async with desk.sessions.begin() as session:
        found = await locked_referral(session, referral_id)
        if found is None:
            return False
        ticket, referral = found
        if referral.consent_asked_at is None or referral.consent is not None:
            return False
        if ticket.requester.telegram_user_id != telegram_user_id:
            log.warning(
                "consent button of referral %s pressed by Telegram user %s: not the requester",
                referral_id,
                telegram_user_id,
            )
            return False
        await _consented(
            desk, session, ticket, referral, answer, utcnow(), pressed_by=f"telegram:{telegram_user_id}"
        )
        await events.record(desk, session, events.ReferralChanged(ticket))
    desk.outbox_written()
    return True


async def _consented(
    desk: Desk,
    session: AsyncSession,
    ticket: Ticket,
    referral: Referral,
    answer: str,
    at: datetime,
    **source: str | None,
) -> None:
    """The requester's yes or no recorded on ``referral`` (``source``: the message or the press that gave
    it, for the audit trail); a yes introduces the two sides at once."""
    referral.consent, referral.consent_at = answer, at
    audit(session, ticket, "requester", "consent", referral=referral.id, answer=answer, **source)
    if answer == "yes":
        await send_introduction(desk, session, referral, actor="helpdesk")


async def send_introduction(desk: Desk, session: AsyncSession, referral: Referral, *, actor: str) -> None:
    ticket = referral.ticket
    # Inside intake the ticket came without its messages and requester: a reply needs both.
    await session.refresh(ticket, ["messages", "requester"])
    requester = ticket.requester
    contact = {
        key: value
        for key, value in (
            ("Name", requester.name),
            ("Email", requester.email),
            ("Organisation", requester.organisation),
            ("Party", ticket.party),
        )
        if value
    }
    letter = await letter_for(desk, session, referral, "introduction")
    await send_letter(desk, session, referral, replace(letter, contact=contact))
    expert = (await roster_experts(desk, session)).get(referral.expert_id or "")
    expert_contact = {
        key: value
        for key, value in (
            ("Name", expert.name if expert else None),
            ("Organisation", referral.organisation),
            ("Email", expert.email if expert else None),
        )
        if value
    }
    text = render("referrals/introduction.{lang}.txt.j2", ticket.language, contact=expert_contact)
    await reply_in_session(desk, session, ticket, text, actor=actor)
    referral.introduced_at = utcnow()
    audit(
        session,
        ticket,
        actor,
        "introduced",
        referral=referral.id,
        expert=referral.expert_id,
        consent=referral.consent,
        consent_at=referral.consent_at.isoformat() if referral.consent_at else None,
    )


async def mark_cooperation(desk: Desk, reference: str, expert_id: str | None, *, actor: str) -> Referral:
    async with desk.sessions.begin() as session:
        ticket = await get_ticket(session, reference, for_update=True)
        referral = await _referral(session, ticket, expert_id)
        if referral.introduced_at is None:
            raise InvalidTransition(f"{ticket.reference}: introduce the two sides first")
        referral.cooperation_at = referral.cooperation_at or utcnow()
        audit(session, ticket, actor, "in_cooperation", referral=referral.id)
        await events.record(desk, session, events.ReferralChanged(ticket))
    desk.outbox_written()
    return referral


async def record_outcome(
    desk: Desk,
    reference: str,
    expert_id: str | None,
    outcome: str,
    text: str,
    *,
    actor: str,
    now: datetime | None = None,
) -> Referral:
    if outcome not in OUTCOMES:
        raise InvalidTransition(f"unknown outcome {outcome!r}: one of {', '.join(OUTCOMES)}")
    async with desk.sessions.begin() as session:
        ticket = await get_ticket(session, reference, for_update=True)
        referral = await _referral(session, ticket, expert_id)
        if referral.introduced_at is None:
            raise InvalidTransition(
                f"{ticket.reference}: there is no cooperation to record an outcome of yet"
            )
        referral.outcome, referral.outcome_text = outcome, text.strip() or None
        referral.outcome_at = now or utcnow()
        referral.cooperation_at = referral.cooperation_at or referral.outcome_at
        audit(session, ticket, actor, "outcome", referral=referral.id, outcome=outcome)
        await events.record(desk, session, events.ReferralChanged(ticket))
    desk.outbox_written()
    return referral
