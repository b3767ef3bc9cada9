"""The Centre's own expert roster, loaded from a file into the database; it replaces the example roster."""

from __future__ import annotations

from sqlalchemy import delete

from helpdesk.db.models import AuditEvent, RosterExpert
from helpdesk.desk import Desk
from knowledge import Expert


async def load_roster(desk: Desk, experts: tuple[Expert, ...], *, actor: str) -> int:
    """Replace the stored roster with `experts` (already validated) in one transaction."""
    async with desk.sessions.begin() as session:
        await session.execute(delete(RosterExpert))
        session.add_all(RosterExpert(id=e.id, data=e.as_dict()) for e in experts)
        session.add(
            AuditEvent(ticket_id=None, actor=actor, action="roster_loaded", detail={"experts": len(experts)})
        )
    return len(experts)
