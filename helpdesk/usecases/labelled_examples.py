"""The classifier's labelled examples (staff corrections stored by reclassify): listed and removable.

Removing one changes the examples' fingerprint, so every process's triage drops it on its next use
(knowledge_state.current_triage).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from helpdesk.db.models import AuditEvent, LabelledExample, Ticket
from helpdesk.desk import Desk
from helpdesk.usecases.errors import DeskError

EXCERPT = 300


async def list_examples(desk: Desk) -> list[dict[str, Any]]:
    async with desk.sessions() as session:
        rows = await session.execute(
            select(LabelledExample, Ticket.reference)
            .outerjoin(Ticket, Ticket.id == LabelledExample.ticket_id)
            .order_by(LabelledExample.id.desc())
        )
        return [
            {
                "id": example.id,
                "ticket": reference,
                "text": example.text[:EXCERPT],
                "targets": list(example.targets),
                "core_functions": list(example.core_functions),
                "created_by": example.created_by,
                "created_at": example.created_at,
            }
            for example, reference in rows.all()
        ]


async def remove_example(desk: Desk, example_id: int, *, actor: str) -> None:
    async with desk.sessions.begin() as session:
        example = await session.get(LabelledExample, example_id)
        if example is None:
            raise DeskError(f"no labelled example #{example_id}")
        await session.delete(example)
        session.add(
            AuditEvent(
                ticket_id=example.ticket_id,
                actor=actor,
                action="example_removed",
                detail={"example": example_id, "targets": list(example.targets)},
            )
        )
