"""Ticket references: one counter row per year, incremented atomically on SQLite and PostgreSQL alike."""

from __future__ import annotations

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk.db.models import TicketCounter
from helpdesk.references import format_reference


async def next_reference(session: AsyncSession, year: int) -> str:
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    # An upsert holds the row lock until commit, so two concurrent intakes never get the same number.
    statement = (
        insert(TicketCounter)
        .values(year=year, last=1)
        .on_conflict_do_update(index_elements=[TicketCounter.year], set_={"last": TicketCounter.last + 1})
        .returning(TicketCounter.last)
    )
    seq = (await session.execute(statement)).scalar_one()
    return format_reference(year, seq)
