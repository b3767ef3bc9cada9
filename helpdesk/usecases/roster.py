"""The Centre's own expert roster in the database: loaded from a file (`helpdesk kb load`) or kept one
expert at a time from the workspace. While the database holds no roster, the packaged example roster
serves; the first edit copies it in, so editing one expert never silently drops the others.

Every change is validated exactly as `helpdesk kb validate` validates a roster file (knowledge.roster).
"""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk.db.models import AuditEvent, RosterExpert
from helpdesk.db.types import utcnow
from helpdesk.desk import Desk
from helpdesk.usecases.errors import DeskError
from helpdesk.usecases.load import expert_load
from knowledge import Expert, packaged_knowledge_base, parse_experts

# How a roster edited from the workspace is named in validation messages.
SOURCE = "roster"


async def load_roster(desk: Desk, experts: tuple[Expert, ...], *, actor: str) -> int:
    """Replace the stored roster with `experts` (already validated) in one transaction."""
    async with desk.sessions.begin() as session:
        await session.execute(delete(RosterExpert))
        session.add_all(RosterExpert(id=e.id, data=e.as_dict()) for e in experts)
        session.add(
            AuditEvent(ticket_id=None, actor=actor, action="roster_loaded", detail={"experts": len(experts)})
        )
    return len(experts)


async def _stored(session: AsyncSession) -> list[dict[str, Any]]:
    return list(await session.scalars(select(RosterExpert.data).order_by(RosterExpert.id)))


async def current_experts(session: AsyncSession) -> tuple[Expert, ...]:
    """The roster triage matches against: the database's, else the packaged examples."""
    stored = await _stored(session)
    if stored:
        return parse_experts({"experts": stored}, file="database roster")
    return (await asyncio.to_thread(packaged_knowledge_base)).experts


async def experts_with_load(desk: Desk) -> list[dict[str, Any]]:
    """Each expert with their open tickets, for the roster page."""
    async with desk.sessions() as session:
        experts = await current_experts(session)
        load = await expert_load(session)
    return [{**e.as_dict(), "open_tickets": load.get(e.id, 0)} for e in experts]


async def _materialised(session: AsyncSession) -> list[dict[str, Any]]:
    """The roster as stored rows, copying the packaged one in on the first edit."""
    stored = await _stored(session)
    if stored:
        return stored
    experts = (await asyncio.to_thread(packaged_knowledge_base)).experts
    session.add_all(RosterExpert(id=e.id, data=e.as_dict()) for e in experts)
    await session.flush()
    return [e.as_dict() for e in experts]


async def save_expert(
    desk: Desk, fields: dict[str, Any], *, actor: str, replacing: str | None = None
) -> Expert:
    """Add an expert (``replacing`` None) or change the one with id ``replacing``.

    The whole roster with this change is validated as a roster file is; KnowledgeError names the field.
    """
    async with desk.sessions.begin() as session:
        roster = await _materialised(session)
        ids = [e["id"] for e in roster]
        if replacing is not None and replacing not in ids:
            raise DeskError(f"no expert {replacing}")
        if replacing is not None and str(fields.get("id", "")).strip() != replacing:
            raise DeskError("an expert's id cannot change (tickets name it); retire and add instead")
        wanted = [e for e in roster if e["id"] != replacing] + [fields]
        expert = parse_experts({"experts": wanted}, file=SOURCE)[-1]
        if replacing is not None:
            await session.execute(delete(RosterExpert).where(RosterExpert.id == replacing))
            await session.flush()
        session.add(RosterExpert(id=expert.id, data=expert.as_dict(), loaded_at=utcnow()))
        session.add(
            AuditEvent(
                ticket_id=None,
                actor=actor,
                action="expert_changed" if replacing else "expert_added",
                detail={"expert": expert.id},
            )
        )
    return expert


async def set_availability(desk: Desk, expert_id: str, availability: str, *, actor: str) -> Expert:
    async with desk.sessions() as session:
        experts = {e.id: e for e in await current_experts(session)}
    if expert_id not in experts:
        raise DeskError(f"no expert {expert_id}")
    return await save_expert(
        desk, {**experts[expert_id].as_dict(), "availability": availability}, actor=actor, replacing=expert_id
    )


async def retire_expert(desk: Desk, expert_id: str, *, actor: str) -> None:
    """Off the roster: no new matches. Tickets keep the name they were matched with."""
    async with desk.sessions.begin() as session:
        roster = await _materialised(session)
        if expert_id not in {e["id"] for e in roster}:
            raise DeskError(f"no expert {expert_id}")
        if len(roster) == 1:
            # An empty roster would bring the packaged example experts back into matching.
            raise DeskError("the last expert cannot be retired: mark them unavailable instead")
        await session.execute(delete(RosterExpert).where(RosterExpert.id == expert_id))
        session.add(
            AuditEvent(ticket_id=None, actor=actor, action="expert_retired", detail={"expert": expert_id})
        )
