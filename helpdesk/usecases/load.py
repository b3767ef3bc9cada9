"""How busy each handler is: open tickets per assignee, which the matcher weighs against capacity."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk import lifecycle
from helpdesk.db.models import Ticket


async def expert_load(session: AsyncSession) -> dict[str, int]:
    rows = await session.execute(
        select(Ticket.assignee, func.count(Ticket.id))
        .where(Ticket.assignee.is_not(None), Ticket.status.in_(lifecycle.ACTIVE))
        .group_by(Ticket.assignee)
    )
    return {assignee: count for assignee, count in rows.all()}
