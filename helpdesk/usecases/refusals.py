"""A refused staff action (someone who is not staff pressed a card button or sent a staff command, or staff
did so where requesters would read the answer)."""

from __future__ import annotations

import logging

from sqlalchemy import select

from helpdesk.db.models import Ticket
from helpdesk.desk import Desk
from helpdesk.references import find_reference
from helpdesk.usecases.tickets import audit

log = logging.getLogger(__name__)


async def record_refusal(
    desk: Desk, reference: str | None, actor: str, attempted: str, *, reason: str = "not staff"
) -> None:
    """Log the attempt, and put it in the ticket's audit trail when it was about a ticket."""
    log.warning("refused %s by %s (%s)%s", attempted, actor, reason, f" on {reference}" if reference else "")
    normalised = find_reference(reference) if reference else None
    if normalised is None:
        return
    async with desk.sessions.begin() as session:
        ticket = await session.scalar(select(Ticket).where(Ticket.reference == normalised))
        if ticket is not None:
            audit(session, ticket, actor, "refused", attempted=attempted, reason=reason)
