"""How busy each handler is: open tickets per assignee, which the matcher weighs against capacity.

The figure is kept as it changes (table ``expert_load``, counted by triggers on ``tickets``: migration
0010_expert_load), so a new ticket's triage reads a few rows instead of counting every active ticket.
``load_drift`` counts it the long way and says where the two differ (``helpdesk health`` reports it).
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from helpdesk import lifecycle
from helpdesk.db.models import ExpertLoad, Ticket


async def expert_load(session: AsyncSession) -> dict[str, int]:
    rows = await session.execute(
        select(ExpertLoad.assignee, ExpertLoad.open_tickets).where(ExpertLoad.open_tickets > 0)
    )
    return {assignee: count for assignee, count in rows.all()}


async def counted_load(connection: AsyncSession | AsyncConnection) -> dict[str, int]:
    """The load counted from the tickets themselves: what ``expert_load`` must always equal."""
    rows = await connection.execute(
        select(Ticket.assignee, func.count(Ticket.id))
        .where(Ticket.assignee.is_not(None), Ticket.status.in_(lifecycle.ACTIVE))
        .group_by(Ticket.assignee)
    )
    return {assignee: count for assignee, count in rows.all()}


async def load_drift(connection: AsyncSession | AsyncConnection) -> dict[str, tuple[int, int]]:
    """Assignees whose running figure differs from the count: name → (running figure, counted)."""
    kept = await connection.execute(select(ExpertLoad.assignee, ExpertLoad.open_tickets))
    running = {assignee: n for assignee, n in kept.all() if n}
    counted = await counted_load(connection)
    return {
        name: (running.get(name, 0), counted.get(name, 0))
        for name in sorted(running.keys() | counted.keys())
        if running.get(name, 0) != counted.get(name, 0)
    }
