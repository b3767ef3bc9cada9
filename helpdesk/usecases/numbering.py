"""Ticket references: one counter row per year, incremented atomically on SQLite and PostgreSQL alike.

A batch of mail opens up to 50 tickets in one transaction. The first number of a year is taken from the
counter row by an upsert, which holds that row (PostgreSQL's row lock, SQLite's write lock of the batch)
until commit, so nobody else can take a number meanwhile: the batch counts on in memory
(``count_in_memory``) and writes the last number it took once (``settle``), before it commits. Inside a
SAVEPOINT the counter row is written at once, as without a batch, so a savepoint rolled back can only
leave a gap, never a number given twice.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk.db.models import TicketCounter
from helpdesk.db.transaction_memo import transaction_values
from helpdesk.db.upsert import insert_or
from helpdesk.references import format_reference

_KEY = "ticket_numbers"


@dataclass
class _Year:
    taken: int  # the last number given in this transaction
    written: int  # the counter row's value as this transaction last wrote it


def count_in_memory(session: AsyncSession) -> None:
    """For the rest of this transaction, numbers after a year's first are counted here; the caller must
    ``settle`` before it commits."""
    transaction_values(session)[_KEY] = {}


async def settle(session: AsyncSession) -> None:
    """Write the last number taken in memory of each year to its counter row."""
    years: dict[int, _Year] | None = transaction_values(session).get(_KEY)
    for year, held in (years or {}).items():
        if held.taken > held.written:
            await session.execute(
                update(TicketCounter).where(TicketCounter.year == year).values(last=held.taken)
            )
            held.written = held.taken


async def next_reference(session: AsyncSession, year: int) -> str:
    years: dict[int, _Year] | None = transaction_values(session).get(_KEY)
    nested = session.in_nested_transaction()
    if years is not None and year in years and not nested:
        held = years[year]
        held.taken += 1
        return format_reference(year, held.taken)
    await settle(session)  # what memory gave out is written before the row counts on
    # An upsert holds the row lock until commit, so two concurrent intakes never get the same number.
    statement = (
        insert_or(session, TicketCounter)
        .values(year=year, last=1)
        .on_conflict_do_update(index_elements=[TicketCounter.year], set_={"last": TicketCounter.last + 1})
        .returning(TicketCounter.last)
    )
    seq = (await session.execute(statement)).scalar_one()
    if years is not None:
        held = years.setdefault(year, _Year(seq, seq))
        # Never below what memory gave out: a savepoint rolled back may take the row back, not the numbers.
        held.taken = held.written = max(held.taken, seq)
    return format_reference(year, seq)
