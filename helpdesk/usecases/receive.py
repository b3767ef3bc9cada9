"""Receive an inbound message from any channel: a new ticket, or a follow-up on an existing one."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk import lifecycle
from helpdesk.composer import Acknowledgement, ChannelComposer
from helpdesk.db.models import Message, Requester, Ticket
from helpdesk.db.transaction_memo import once_per_transaction
from helpdesk.db.types import utcnow
from helpdesk.desk import Desk
from helpdesk.language import detect_reply_language
from helpdesk.messages import InboundMessage
from helpdesk.usecases import events
from helpdesk.usecases.acknowledge import acknowledge
from helpdesk.usecases.email_rules import after_stored, relay_staff_mail
from helpdesk.usecases.introductions import record_consent
from helpdesk.usecases.knowledge_state import current_triage
from helpdesk.usecases.numbering import next_reference
from helpdesk.usecases.one_flush import before_touching
from helpdesk.usecases.one_flush import current as one_flush
from helpdesk.usecases.read_ahead import answered_or_read
from helpdesk.usecases.referral_load import matching_load
from helpdesk.usecases.referrals import record_expert_message
from helpdesk.usecases.requesters import find_or_create_requester
from helpdesk.usecases.threading_rules import find_referral, find_thread
from helpdesk.usecases.tickets import audit, store_inbound

SUBJECT_LIMIT = 300

# The duplicate check, built once (see read_ahead).
STORED = select(Message.ticket_id).where(
    Message.channel == bindparam("channel"), Message.channel_message_id == bindparam("channel_id")
)


@dataclass(frozen=True, slots=True)
class ReceiveResult:
    reference: str
    ticket: Ticket = field(repr=False, compare=False)
    created: bool
    duplicate: bool = False
    reopened: bool = False

    @property
    def ticket_id(self) -> int:
        # Read from the row, not copied into the result: in a group written by one flush a new ticket has
        # its id only once the group is written, which is before anybody is answered.
        return self.ticket.id


async def receive(desk: Desk, inbound: InboundMessage) -> ReceiveResult:
    async with desk.sessions.begin() as session:
        result = await receive_in_session(desk, session, inbound)
    if not result.duplicate:
        desk.outbox_written()
    return result


async def receive_in_session(desk: Desk, session: AsyncSession, inbound: InboundMessage) -> ReceiveResult:
    """The whole of receiving inside the caller's transaction (group commit, tests); the caller commits.

    Reads first, writes last: what the message adds (requester, ticket, message, audit, acknowledgement,
    outbox) is linked as objects and written by one flush at the end, each table's rows in one batch. In a
    group written by one flush (:mod:`helpdesk.usecases.one_flush`) that flush is the group's, and what
    needs the rows' ids (consent, staff card, notifications) runs after it."""
    composer = desk.composer(inbound.channel)  # an unknown channel is refused before anything is stored
    with session.no_autoflush:
        outcome = await _receive(desk, session, composer, inbound)
    if isinstance(outcome, ReceiveResult):
        return outcome
    received, reopened = outcome
    ticket = received.ticket
    result = ReceiveResult(ticket.reference, ticket, created=received.created, reopened=reopened)
    group = one_flush(session)
    if group is not None:
        group.later(ticket, partial(_after_written, desk, session, received))
        return result
    await session.flush()
    await _after_written(desk, session, received)
    return result


async def _after_written(desk: Desk, session: AsyncSession, received: events.MessageReceived) -> None:
    if received.sender_role == "requester" and received.moves_ticket:
        await record_consent(desk, session, received.ticket, received.inbound)
    await events.record(desk, session, received)


async def _receive(
    desk: Desk, session: AsyncSession, composer: ChannelComposer, inbound: InboundMessage
) -> ReceiveResult | tuple[events.MessageReceived, bool]:
    """Everything up to the flush; a duplicate or a relayed staff mail is finished here."""
    seen = await answered_or_read(
        session,
        "stored",
        (inbound.channel, inbound.channel_message_id),
        STORED,
        {"channel": inbound.channel, "channel_id": inbound.channel_message_id},
    )
    if seen is not None:
        ticket = await session.get_one(Ticket, seen)
        return ReceiveResult(ticket.reference, ticket, created=False, duplicate=True)

    referral = await find_referral(session, inbound)
    if referral is not None:
        # An expert's answer joins the referred ticket for staff only: no requester row, no receipt.
        await before_touching(session, [referral.ticket])
        await record_expert_message(desk, session, referral, inbound)
        return ReceiveResult(referral.ticket.reference, referral.ticket, created=False)

    language = detect_reply_language(
        inbound.text_for_classification or inbound.subject or "", inbound.sender.language
    )
    requester = await find_or_create_requester(session, inbound.sender, language)
    if requester.language_chosen and requester.language:
        language = requester.language  # the requester's own choice (/lang) beats detection
    thread = await find_thread(desk, session, inbound, requester)
    if thread.staff_ticket is not None:
        await relay_staff_mail(desk, session, thread.staff_ticket, inbound)
        await session.flush()
        return ReceiveResult(thread.staff_ticket.reference, thread.staff_ticket, created=False)
    ticket = thread.ticket
    actor = composer.actor(inbound)
    crowded: list[Ticket] = []
    if ticket is None and composer.receipts.open_ticket_cap and requester.id is not None:
        crowded = await _open_tickets_at_cap(desk, session, requester, inbound)
        if crowded:
            ticket = crowded[0]  # nothing is lost: the message joins their most recent open request
            await before_touching(session, [ticket])

    resources: tuple[dict[str, str], ...] = ()
    if ticket is None:
        # Classified before the ticket exists, so the ticket is written once, classification included.
        triaged = await _triage(desk, session, requester, inbound, language)
        ticket = await _open_ticket(desk, session, inbound, requester, language, actor, triaged)
        created, reopened = True, False
        resources = triaged.resources
    else:
        created = False
        # Automatic mail and mail the trusted mail server failed are kept, but move nothing.
        moves = not inbound.automatic and thread.changes_ticket
        previous = lifecycle.apply(ticket, lifecycle.Move.INBOUND, utcnow()) if moves else None
        reopened = previous in lifecycle.REOPENABLE
        if reopened:
            audit(session, ticket, actor, "reopened", previous=previous)
        ticket.updated_at = utcnow()

    message = store_inbound(session, ticket, inbound)
    audit(session, ticket, actor, "received", message_channel_id=inbound.channel_message_id)
    await after_stored(desk, session, ticket, message, inbound, thread, created=created)
    ack = Acknowledgement(ticket, inbound, created=created, resources=resources, crowded=tuple(crowded))
    await acknowledge(desk, session, ack)
    received = events.MessageReceived(
        ticket,
        inbound,
        created=created,
        moves_ticket=thread.changes_ticket,
        unverified_staff=thread.unverified_staff,
        sender_role=thread.role,
    )
    return received, reopened


async def _open_tickets_at_cap(
    desk: Desk, session: AsyncSession, requester: Requester, inbound: InboundMessage
) -> list[Ticket]:
    """The requester's open tickets, newest first (this chat's first) when they hold the most allowed;
    empty when they may open another. Newest by opening, not by last change: a card being posted touches
    a ticket, and a burst must keep joining the same one."""
    cap = desk.limits.max_open_tickets
    if cap <= 0:
        return []
    tickets = list(
        await session.scalars(
            select(Ticket)
            .where(Ticket.requester_id == requester.id, Ticket.status.in_(lifecycle.ACTIVE))
            .order_by(Ticket.id.desc())
            .limit(cap)
        )
    )
    if len(tickets) < cap:
        return []
    chat = inbound.sender.telegram_chat_id
    return sorted(tickets, key=lambda t: t.telegram_chat_id != chat)  # stable: recency kept within each


def _subject(inbound: InboundMessage) -> str:
    subject = (inbound.subject or "").strip()
    if not subject:
        first_line = next((line.strip() for line in inbound.text.splitlines() if line.strip()), "")
        subject = first_line or "(no text)"
    return subject if len(subject) <= SUBJECT_LIMIT else subject[: SUBJECT_LIMIT - 1] + "…"


@dataclass(frozen=True, slots=True)
class _Triaged:
    classification: dict[str, Any]
    matches: dict[str, Any]
    party: str | None
    # Resources for the acknowledgement (none when the request could not be classified).
    resources: tuple[dict[str, str], ...]
    audit: dict[str, Any]


async def _triage(
    desk: Desk, session: AsyncSession, requester: Requester, inbound: InboundMessage, language: str
) -> _Triaged:
    """Classify a new request and match experts and resources, before its ticket is made."""
    triage = await once_per_transaction(session, "triage", lambda: current_triage(desk, session))
    load = await once_per_transaction(session, "matching_load", lambda: matching_load(session))
    text = "\n".join(part for part in (inbound.subject, inbound.text_for_classification) if part)
    classification = triage.classify(text)
    assessment = triage.assess(classification, language=language or "ru", load=load)
    party = requester.party
    if party is None and classification.party is not None:
        # The text names the Party ("our ministry in Nukus"): remember it for this requester too.
        party = requester.party = classification.party
    return _Triaged(
        classification=assessment.classification_json(),
        matches=assessment.matches_json(),
        party=party,
        resources=assessment.for_requester if not classification.unclassified else (),
        audit={
            "targets": classification.target_numbers[:3],
            "core_functions": classification.core_function_numbers[:2],
            "unclassified": classification.unclassified,
        },
    )


async def _open_ticket(
    desk: Desk,
    session: AsyncSession,
    inbound: InboundMessage,
    requester: Requester,
    language: str,
    actor: str,
    triaged: _Triaged,
) -> Ticket:
    now = inbound.received_at or utcnow()
    reference = await next_reference(session, now.astimezone(desk.timezone).year)
    ticket = Ticket(
        reference=reference,
        subject=_subject(inbound),
        channel=inbound.channel,
        status=lifecycle.INITIAL.value,
        requester=requester,
        party=triaged.party,
        language=language,
        telegram_chat_id=inbound.sender.telegram_chat_id,
        classification=triaged.classification,
        matches=triaged.matches,
        created_at=now,
        updated_at=now,
        tags=[],
    )
    session.add(ticket)
    audit(session, ticket, actor, "created", channel=inbound.channel)
    audit(session, ticket, "classifier", "classified", **triaged.audit)
    return ticket
