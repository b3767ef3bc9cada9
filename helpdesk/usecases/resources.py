"""Knowledge-base resources kept from the workspace: the packaged list, with the database's additions and
edits laid over it by id. Every change is validated as `helpdesk kb validate` validates resources.yaml
(knowledge.loader.parse_resources), against the whole list so an id stays unique.
"""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk.db.models import AuditEvent, KbResource
from helpdesk.db.types import utcnow
from helpdesk.desk import Desk
from helpdesk.usecases.errors import DeskError
from knowledge import Resource, packaged_knowledge_base
from knowledge.loader import parse_resources
from knowledge.roster import resource_document

SOURCE = "resources"


async def _documents(session: AsyncSession) -> list[dict[str, Any]]:
    """Every resource as a resources.yaml entry, the database's replacing the packaged ones by id."""
    stored = {row.id: row.data for row in await session.scalars(select(KbResource).order_by(KbResource.id))}
    packaged = [resource_document(r) for r in (await asyncio.to_thread(packaged_knowledge_base)).resources]
    merged = [stored.pop(doc["id"], doc) for doc in packaged]
    return merged + list(stored.values())


async def current_resources(session: AsyncSession) -> tuple[Resource, ...]:
    return parse_resources({"resources": await _documents(session)}, file="database resources")


async def list_resources(desk: Desk) -> list[dict[str, Any]]:
    async with desk.sessions() as session:
        return [resource_document(r) for r in await current_resources(session)]


async def get_resource(desk: Desk, resource_id: str) -> dict[str, Any]:
    for doc in await list_resources(desk):
        if doc["id"] == resource_id:
            return doc
    raise DeskError(f"no resource {resource_id}")


async def save_resource(
    desk: Desk, fields: dict[str, Any], *, actor: str, replacing: str | None = None
) -> Resource:
    """Add a resource or change the one with id ``replacing``; KnowledgeError names what is wrong."""
    async with desk.sessions.begin() as session:
        documents = await _documents(session)
        if replacing is not None and replacing not in {d["id"] for d in documents}:
            raise DeskError(f"no resource {replacing}")
        if replacing is not None and str(fields.get("id", "")).strip() != replacing:
            raise DeskError("a resource's id cannot change (tickets name it)")
        wanted = [d for d in documents if d["id"] != replacing] + [fields]
        resource = parse_resources({"resources": wanted}, file=SOURCE)[-1]
        await session.execute(delete(KbResource).where(KbResource.id == resource.id))
        session.add(KbResource(id=resource.id, data=resource_document(resource), loaded_at=utcnow()))
        session.add(
            AuditEvent(
                ticket_id=None,
                actor=actor,
                action="resource_changed" if replacing else "resource_added",
                detail={"resource": resource.id},
            )
        )
    return resource
