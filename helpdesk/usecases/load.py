"""How busy each handler is: open tickets per assignee, which the matcher weighs against capacity.

The figure is kept as it changes (table ``expert_load``, counted by triggers on ``tickets``: migration
0010_expert_load), so a new ticket's triage reads a few rows instead of counting every active ticket.
``load_drift`` counts it the long way and says where the two differ (``helpdesk health`` reports it);
``recount_load`` (``helpdesk db recount-load``) sets the figure to the count.
"""

from __future__ import annotations

from sqlalchemy import Select, delete, func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from helpdesk import lifecycle
from helpdesk.db.models import ExpertLoad, Ticket
from helpdesk.desk import Desk

Drift = dict[str, tuple[int, int]]


def _counted() -> Select[tuple[str | None, int]]:
    return (
        select(Ticket.assignee, func.count(Ticket.id))
        .where(Ticket.assignee.is_not(None), Ticket.status.in_(lifecycle.ACTIVE))
        .group_by(Ticket.assignee)
    )


async def expert_load(session: AsyncSession) -> dict[str, int]:
    rows = await session.execute(
        select(ExpertLoad.assignee, ExpertLoad.open_tickets).where(ExpertLoad.open_tickets > 0)
    )
    return {assignee: count for assignee, count in rows.all()}


async def counted_load(connection: AsyncSession | AsyncConnection) -> dict[str, int]:
    """The load counted from the tickets themselves: what ``expert_load`` must always equal."""
    return {assignee: count for assignee, count in (await connection.execute(_counted())).all()}


async def load_drift(connection: AsyncSession | AsyncConnection) -> Drift:
    """Assignees whose running figure differs from the count: name → (running figure, counted)."""
    kept = await connection.execute(select(ExpertLoad.assignee, ExpertLoad.open_tickets))
    running = {assignee: n for assignee, n in kept.all() if n}
    counted = await counted_load(connection)
    return {
        name: (running.get(name, 0), counted.get(name, 0))
        for name in sorted(running.keys() | counted.keys())
        if running.get(name, 0) != counted.get(name, 0)
    }


async def recount_load(desk: Desk) -> Drift:
    """Set the running figure to the count (after a hand edit of either table); returns what was off."""
    async with desk.sessions.begin() as session:
        if session.get_bind().dialect.name == "postgresql":
            # No ticket moves between the count and the rewrite (SQLite: the DELETE takes the write lock).
            await session.execute(text("LOCK TABLE tickets IN SHARE ROW EXCLUSIVE MODE"))
        drift = await load_drift(session)
        await session.execute(delete(ExpertLoad))
        await session.execute(insert(ExpertLoad).from_select(["assignee", "open_tickets"], _counted()))
    return drift
