"""bench/seed.py fills a database with a history the desk can keep working on, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime

import bench_modules
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from helpdesk.db.models import Message, Requester, Ticket, TicketCounter
from helpdesk.desk import Desk
from helpdesk.messages import InboundMessage, Sender
from helpdesk.references import REFERENCE_RE, format_reference
from helpdesk.usecases.load import counted_load, expert_load
from helpdesk.usecases.receive import receive


async def test_seeded_history_is_consistent_and_numbering_continues(
    database_url: str, engine: AsyncEngine, desk: Desk
) -> None:
    summary = await bench_modules.load("seed").seed(
        database_url, 300, seed=3, now=datetime.now(UTC), migrate=False
    )
    assert summary.tickets == 300 and summary.rows["tickets"] == 300

    async with desk.sessions() as session:
        assert await session.scalar(select(func.count(Ticket.id))) == 300
        orphans = await session.scalar(
            select(func.count(Ticket.id)).where(~Ticket.requester_id.in_(select(Requester.id)))
        )
        silent = await session.scalar(
            select(func.count(Ticket.id)).where(
                ~Ticket.id.in_(select(Message.ticket_id).where(Message.kind == "inbound"))
            )
        )
        assert orphans == 0 and silent == 0
        statuses = set(await session.scalars(select(Ticket.status).distinct()))
        assert statuses == {"new", "open", "waiting", "resolved", "closed"}
        channels = set(await session.scalars(select(Requester.email.is_not(None)).distinct()))
        assert channels == {True, False}  # email and Telegram requesters alike
        highest: dict[int, int] = {}
        for reference in await session.scalars(select(Ticket.reference)):
            match = REFERENCE_RE.fullmatch(reference)
            assert match is not None, reference
            year, seq = int(match.group(1)), int(match.group(2))
            highest[year] = max(highest.get(year, 0), seq)
        counters = {c.year: c.last for c in await session.scalars(select(TicketCounter))}
        # Bulk rows (COPY, executemany) are counted by the same triggers as the desk's own moves.
        assert await expert_load(session) == await counted_load(session) != {}
    assert counters == highest == summary.counters

    now = datetime.now(UTC)
    result = await receive(
        desk,
        InboundMessage(
            channel="email",
            channel_message_id="<after-seed@example.org>",
            sender=Sender(email="someone.new@example.org"),
            subject="A new request",
            text="Hello",
        ),
    )
    year = now.astimezone(desk.timezone).year
    assert result.created and result.reference == format_reference(year, counters[year] + 1)
