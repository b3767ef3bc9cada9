"""Outbox items the delivery worker gave up on: listed with their reasons, and sent again on request."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from helpdesk.db.models import AuditEvent, OutboxItem, Ticket
from helpdesk.db.types import utcnow
from helpdesk.desk import Desk
from helpdesk.usecases.errors import DeskError

SHOWN = 200


async def list_failed_deliveries(desk: Desk) -> list[dict[str, Any]]:
    async with desk.sessions() as session:
        rows = await session.execute(
            select(OutboxItem, Ticket.reference)
            .outerjoin(Ticket, Ticket.id == OutboxItem.ticket_id)
            .where(OutboxItem.status == "failed")
            .order_by(OutboxItem.id.desc())
            .limit(SHOWN)
        )
        return [
            {
                "id": item.id,
                "ticket": reference,
                "channel": item.channel,
                "recipient": str(item.payload.get("recipient") or ""),
                "attempts": item.attempts,
                "reason": item.last_error or "",
                "created_at": item.created_at,
            }
            for item, reference in rows.all()
        ]


async def retry_delivery(desk: Desk, item_id: int, *, actor: str) -> None:
    """Back in the queue as if new: the worker takes it on its next round, with a fresh retry budget."""
    async with desk.sessions.begin() as session:
        item = await session.get(OutboxItem, item_id, with_for_update=True)
        if item is None or item.status != "failed":
            raise DeskError(f"no failed delivery #{item_id}")
        item.status = "pending"
        item.attempts = 0
        item.next_attempt_at = utcnow()
        item.locked_until = None
        item.claim_token = None
        session.add(
            AuditEvent(
                ticket_id=item.ticket_id,
                actor=actor,
                action="delivery_retried",
                detail={"outbox": item_id, "reason": (item.last_error or "")[:500]},
            )
        )
    desk.outbox_written()
