"""Retention: tickets closed longer ago than the retention period are anonymised, in batches; idempotent.

An anonymised ticket keeps what the reports count and loses its text (see ``scrub``); its ``anonymised``
audit event marks it done. A requester whose every ticket is past the period is forgotten as a whole
(``forget``). ``helpdesk.jobs.retention`` runs this in ``helpdesk run``; ``helpdesk requester retention``
runs it once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import delete, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from helpdesk.db.models import (
    AuditEvent,
    LabelledExample,
    Message,
    OutboxItem,
    Requester,
    Ticket,
    TicketParticipant,
)
from helpdesk.db.types import utcnow
from helpdesk.desk import Desk
from helpdesk.lifecycle import Status
from helpdesk.reports.period import add_months
from helpdesk.usecases.personal_data.forget import forget_identity, record_forgotten
from helpdesk.usecases.personal_data.person import Person, identify, is_forgotten, pseudonym
from helpdesk.usecases.personal_data.scrub import safe_detail, scrub_message, scrub_outbox, scrub_ticket

RETENTION_ACTOR = "helpdesk:retention"

# Only closed tickets age out; a reopened one is kept.
CLOSED = Status.CLOSED


@dataclass
class RetentionResult:
    cutoff: datetime
    tickets: list[str] = field(default_factory=list)
    requesters: list[str] = field(default_factory=list)
    applied: bool = False


def retention_cutoff(months: int, now: datetime | None = None) -> datetime:
    now = now or utcnow()
    first = add_months(now.date().replace(day=1), -months)
    # Same day of the month, N months back (the 31st becomes the month's last day).
    day = now.day
    while True:
        try:
            return now.replace(year=first.year, month=first.month, day=day)
        except ValueError:
            day -= 1


async def apply_retention(
    desk: Desk, months: int, *, apply: bool, now: datetime | None = None, batch: int = 200
) -> RetentionResult:
    """Anonymise tickets closed more than `months` ago (and requesters with nothing newer); idempotent.

    With ``apply=False`` only reports what would change. Already anonymised tickets (marked by their
    ``anonymised`` audit event) are skipped, so running it every hour costs one query.
    """
    if months <= 0:
        raise ValueError("the retention period must be at least one month")
    cutoff = retention_cutoff(months, now)
    result = RetentionResult(cutoff=cutoff, applied=apply)
    done = select(AuditEvent.ticket_id).where(
        AuditEvent.action == "anonymised", AuditEvent.ticket_id.is_not(None)
    )
    due = (
        select(Ticket.id)
        .where(Ticket.status == CLOSED, Ticket.closed_at.is_not(None), Ticket.closed_at < cutoff)
        .where(Ticket.id.not_in(done))
        .order_by(Ticket.id)
    )
    async with desk.sessions() as session:
        ticket_ids = list(await session.scalars(due))
    for start in range(0, len(ticket_ids), batch):
        chunk = ticket_ids[start : start + batch]
        async with desk.sessions.begin() as session:
            await _retain_chunk(session, chunk, result, apply=apply, cutoff=cutoff)
    return result


async def _retain_chunk(
    session: AsyncSession,
    ticket_ids: Sequence[int],
    result: RetentionResult,
    *,
    apply: bool,
    cutoff: datetime,
) -> None:
    # Intake's lock order: the requesters first (forgetting one of them needs the row alone), then tickets.
    await session.execute(
        select(Requester.id)
        .where(Requester.id.in_(select(Ticket.requester_id).where(Ticket.id.in_(ticket_ids))))
        .order_by(Requester.id)
        .with_for_update()
    )
    tickets = list(
        await session.scalars(
            select(Ticket)
            .where(Ticket.id.in_(ticket_ids))
            .options(selectinload(Ticket.messages).selectinload(Message.attachments))
            .with_for_update(of=Ticket)
            .order_by(Ticket.id)
        )
    )
    requester_ids = set()
    for ticket in tickets:
        # Reopened since it was listed: not due any more.
        if ticket.status != CLOSED or ticket.closed_at is None or ticket.closed_at >= cutoff:
            continue
        result.tickets.append(ticket.reference)
        requester_ids.add(ticket.requester_id)
        if not apply:
            continue
        scrub_ticket(ticket, None, "")
        for message in ticket.messages:
            scrub_message(message, None, "")
        for item in await session.scalars(select(OutboxItem).where(OutboxItem.ticket_id == ticket.id)):
            scrub_outbox(item, None, "", None)
        for event in await session.scalars(select(AuditEvent).where(AuditEvent.ticket_id == ticket.id)):
            event.detail = safe_detail(event.action, event.detail or {}, None, "")
        await session.execute(delete(TicketParticipant).where(TicketParticipant.ticket_id == ticket.id))
        await session.execute(delete(LabelledExample).where(LabelledExample.ticket_id == ticket.id))
        session.add(AuditEvent(ticket_id=ticket.id, actor=RETENTION_ACTOR, action="anonymised", detail={}))
    await session.flush()
    # A requester whose every ticket is now anonymised (or due) is forgotten as a whole.
    for requester_id in sorted(requester_ids):
        newer = await session.scalar(
            select(func.count(Ticket.id)).where(
                Ticket.requester_id == requester_id,
                or_(Ticket.status != CLOSED, Ticket.closed_at.is_(None), Ticket.closed_at >= cutoff),
            )
        )
        if newer:
            continue
        requester = await session.get(Requester, requester_id)
        if requester is None or is_forgotten(requester):
            continue
        result.requesters.append(pseudonym(requester_id))
        if apply:
            identity = await identify(session, Person(requester_id=requester_id))
            forgotten = await forget_identity(session, identity)
            record_forgotten(session, forgotten, actor=RETENTION_ACTOR)
