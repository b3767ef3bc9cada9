"""Who else is on a ticket's page: staff viewing it or writing a reply, kept in the database by heartbeats.

A page marks "viewing" when it is opened and "replying" once its reply box is typed in; its poll only keeps
the mark alive (``touch``), so a reply started is not forgotten by the next poll. A mark older than
``EXPIRES`` is gone: the page was closed, the laptop slept. Rows of one staff member and one ticket are
one row, rewritten in place.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk.db.models import StaffAccount, Ticket, TicketPresence
from helpdesk.db.types import utcnow
from helpdesk.db.upsert import insert_or
from helpdesk.desk import Desk
from helpdesk.usecases.errors import TicketNotFound

# The page polls every few seconds (templates/web/ticket.html.j2); three missed polls and the mark is gone.
POLL_SECONDS = 5
EXPIRES = timedelta(seconds=20)


class State(StrEnum):
    VIEWING = "viewing"
    REPLYING = "replying"


@dataclass(frozen=True)
class Present:
    name: str
    state: State


async def _ticket_id(session: AsyncSession, reference: str) -> int:
    ticket_id = await session.scalar(select(Ticket.id).where(Ticket.reference == reference))
    if ticket_id is None:
        raise TicketNotFound(reference)
    return ticket_id


async def mark(desk: Desk, staff_id: int, reference: str, state: State) -> None:
    """``staff_id`` is on the page of ``reference`` in ``state`` as of now."""
    async with desk.sessions.begin() as session:
        ticket_id = await _ticket_id(session, reference)
        values = {"staff_id": staff_id, "ticket_id": ticket_id, "state": state.value, "seen_at": utcnow()}
        statement = insert_or(session, TicketPresence).values(**values)
        await session.execute(
            statement.on_conflict_do_update(
                index_elements=["staff_id", "ticket_id"],
                set_={"state": statement.excluded.state, "seen_at": statement.excluded.seen_at},
            )
        )


async def touch(desk: Desk, staff_id: int, reference: str) -> None:
    """Keep the mark alive in its state; a page whose mark expired is marked viewing again."""
    async with desk.sessions.begin() as session:
        ticket_id = await _ticket_id(session, reference)
        kept = await session.execute(
            update(TicketPresence)
            .where(TicketPresence.staff_id == staff_id, TicketPresence.ticket_id == ticket_id)
            .where(TicketPresence.seen_at >= utcnow() - EXPIRES)
            .values(seen_at=utcnow())
        )
    if kept.rowcount == 0:  # type: ignore[attr-defined]
        await mark(desk, staff_id, reference, State.VIEWING)


async def others(desk: Desk, staff_id: int, reference: str, now: datetime | None = None) -> list[Present]:
    """Everyone else on the page of ``reference`` now, by name; expired marks are cleared on the way."""
    now = now or utcnow()
    async with desk.sessions.begin() as session:
        ticket_id = await _ticket_id(session, reference)
        await session.execute(
            delete(TicketPresence).where(
                TicketPresence.ticket_id == ticket_id, TicketPresence.seen_at < now - EXPIRES
            )
        )
        rows = await session.execute(
            select(StaffAccount.name, TicketPresence.state)
            .join(StaffAccount, StaffAccount.id == TicketPresence.staff_id)
            .where(TicketPresence.ticket_id == ticket_id, TicketPresence.staff_id != staff_id)
            .order_by(StaffAccount.name)
        )
        return [Present(name, State(state)) for name, state in rows.all()]
