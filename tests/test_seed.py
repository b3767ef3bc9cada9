"""bench/seed.py fills a database with a history the desk can keep working on, on SQLite and PostgreSQL."""

from __future__ import annotations

import importlib.util
import sys
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from helpdesk.db.models import Message, Requester, Ticket, TicketCounter
from helpdesk.desk import Desk
from helpdesk.messages import InboundMessage, Sender
from helpdesk.references import REFERENCE_RE, format_reference
from helpdesk.usecases.receive import receive


def _bench_seed() -> ModuleType:
    # bench/ is a folder of scripts, not a package: load the module the way other benches use it.
    path = Path(__file__).resolve().parents[1] / "bench" / "seed.py"
    spec = importlib.util.spec_from_file_location("bench_seed", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


async def test_seeded_history_is_consistent_and_numbering_continues(
    database_url: str, engine: AsyncEngine, desk: Desk
) -> None:
    summary = await _bench_seed().seed(database_url, 300, seed=3, now=datetime.now(UTC), migrate=False)
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
