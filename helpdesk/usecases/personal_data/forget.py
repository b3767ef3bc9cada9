"""Forget a person: pseudonymise them everywhere, keeping what the reports count; safe to run again.

What is kept when a person is forgotten (or a ticket falls under the retention period) is what the reports
count: the ticket rows with their reference, channel, status, Party, language, priority, assignee, times,
classification (targets, core functions, scores; the evidence, which quotes words of the request, is
cleared) and matches (drawn from the knowledge base), and the outbox rows with their status, times and the
resources an acknowledgement carried. Everything that says who the person is or what they wrote goes:

- the requester row becomes a pseudonym, ``forgotten-<id>`` (stable: the same person always gets the same
  one, and a second run changes nothing);
- every message on their tickets (theirs, staff replies that address them and internal notes about them)
  loses its body, subject, HTML and channel id; their own messages on other tickets (as a Cc) too;
  attachments lose their data and file name (type and size stay);
- outbox items on their tickets or addressed to them lose their text, subject, HTML, threading ids and
  recipient; those still pending are cancelled (status ``failed``);
- ticket participations with their address are deleted; so are labelled examples made from their tickets
  (the classifier can learn nothing from an erased text, and deleting changes the fingerprint that makes a
  running service rebuild its classifier) and dead letters that mention their address or Telegram id;
- an open "which ticket does this continue?" question of theirs is dropped with the messages it holds;
- audit events: their actor string (``email:…``, ``telegram:…``) becomes the pseudonym; on their tickets
  only the enumerated detail values are kept (statuses, channels, assignees, numbers), free text goes;
- automatic-reply counters addressed to them carry the pseudonym.

One audit event (``requester_forgotten``) records that it happened, with the pseudonym and counts only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from sqlalchemy import Text, cast, delete, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk.db.models import AuditEvent, AutoReply, LabelledExample, OutboxItem, TicketParticipant
from helpdesk.desk import Desk
from helpdesk.usecases.followup_question import forget_questions
from helpdesk.usecases.personal_data.experts import forget_expert
from helpdesk.usecases.personal_data.person import Identity, Person, identify, pseudonym
from helpdesk.usecases.personal_data.rows import dead_letters_for, messages_elsewhere, outbox_for, tickets_of
from helpdesk.usecases.personal_data.scrub import scrub_event, scrub_message, scrub_outbox, scrub_ticket


@dataclass
class ForgetResult:
    pseudonym: str | None
    requesters: int = 0
    tickets: int = 0
    messages: int = 0
    attachments: int = 0
    outbox_items: int = 0
    participations: int = 0
    audit_events: int = 0
    dead_letters: int = 0
    labelled_examples: int = 0
    automatic_replies: int = 0
    held_messages: int = 0
    referrals: int = 0

    def counts(self) -> dict[str, int]:
        return {k: v for k, v in self.__dict__.items() if isinstance(v, int)}

    @property
    def found(self) -> bool:
        return any(self.counts().values())


async def forget_person(desk: Desk, person: Person, *, actor: str) -> ForgetResult:
    """Erase or anonymise the person everywhere, keeping the tickets' statistics; safe to run again."""
    async with desk.sessions.begin() as session:
        identity = await identify(session, person, for_update=True)
        result = await forget_identity(session, identity)
        if result.found:
            record_forgotten(session, result, actor=actor)
    return result


def record_forgotten(session: AsyncSession, result: ForgetResult, *, actor: str) -> None:
    """The one audit event saying it happened: the pseudonym and counts only."""
    session.add(
        AuditEvent(
            ticket_id=None,
            actor=actor,
            action="requester_forgotten",
            detail={"pseudonym": result.pseudonym, **result.counts()},
        )
    )


async def forget_identity(session: AsyncSession, identity: Identity) -> ForgetResult:
    """Forget them in the caller's transaction (a staff request, a retention batch); counts what changed."""
    label = identity.label()
    result = ForgetResult(pseudonym=label if identity.requesters else None)
    pattern = identity.pattern()
    tickets = await tickets_of(session, identity)
    ticket_ids = {t.id for t in tickets}
    if ticket_ids:
        # The delivery worker marks a send's outbox row, then its message, each by id: take the outbox rows
        # of these tickets the same way before any message is scrubbed, or a mark in flight and this wait
        # on each other (docs/reliability.md, lock order).
        await session.execute(
            select(OutboxItem.id)
            .where(OutboxItem.ticket_id.in_(ticket_ids))
            .order_by(OutboxItem.id)
            .with_for_update()
        )
    for ticket in tickets:
        changed = scrub_ticket(ticket, identity, label)
        result.tickets += 1 if changed else 0
        for message in ticket.messages:
            m, a = scrub_message(message, identity, label)
            result.messages += m
            result.attachments += a

    # Their own messages on other people's tickets (they were in Cc).
    for message in await messages_elsewhere(session, identity, ticket_ids):
        m, a = scrub_message(message, identity, label)
        result.messages += m
        result.attachments += a

    for item in await outbox_for(session, identity, ticket_ids):
        result.outbox_items += 1 if scrub_outbox(item, identity, label, pattern) else 0

    if identity.emails:
        deleted = await session.execute(
            delete(TicketParticipant).where(func.lower(TicketParticipant.email).in_(identity.emails))
        )
        result.participations += deleted.rowcount or 0
        for reply in await session.scalars(
            select(AutoReply).where(func.lower(AutoReply.recipient).in_(identity.emails))
        ):
            reply.recipient = label
            result.automatic_replies += 1

    audit_conditions = []
    if identity.actors:
        audit_conditions.append(AuditEvent.actor.in_(identity.actors))
    if ticket_ids:
        audit_conditions.append(AuditEvent.ticket_id.in_(ticket_ids))
    events = (
        list(await session.scalars(select(AuditEvent).where(or_(*audit_conditions))))
        if audit_conditions
        else []
    )
    if pattern is not None:
        # Elsewhere an address can sit in a detail (a suppressed receipt's recipient): find it as text.
        seen = {e.id for e in events}
        as_text = func.lower(cast(AuditEvent.detail, Text))
        needles = [*identity.emails, *(str(t) for t in identity.telegram_ids)]
        for event in await session.scalars(
            select(AuditEvent).where(or_(*(as_text.contains(n.lower(), autoescape=True) for n in needles)))
        ):
            if event.id not in seen and pattern.search(json.dumps(event.detail, ensure_ascii=False)):
                events.append(event)
    for event in events:
        result.audit_events += 1 if scrub_event(event, identity, label, pattern, ticket_ids) else 0

    for letter in await dead_letters_for(session, identity):
        await session.delete(letter)
        result.dead_letters += 1

    if ticket_ids:
        deleted = await session.execute(
            delete(LabelledExample).where(LabelledExample.ticket_id.in_(ticket_ids))
        )
        result.labelled_examples += deleted.rowcount or 0

    result.held_messages = await forget_questions(session, identity.telegram_ids)

    # As an expert: the referrals that went to them and what they wrote back.
    referrals, expert_messages = await forget_expert(session, identity, label)
    result.referrals += referrals
    result.messages += expert_messages

    for requester in identity.requesters:
        name = pseudonym(requester.id)
        before = (requester.name, requester.email, requester.telegram_user_id, requester.telegram_chat_id)
        requester.name = name
        requester.email = None
        requester.telegram_user_id = None
        requester.telegram_chat_id = None
        requester.organisation = None
        if before != (name, None, None, None):
            result.requesters += 1
    await session.flush()
    return result
