"""Reading tickets for staff: filtered lists and one ticket in full."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from helpdesk import lifecycle
from helpdesk.db.models import Attachment, AuditEvent, Message, OutboxItem, Referral, Ticket
from helpdesk.desk import Desk
from helpdesk.usecases.tickets import get_ticket


@dataclass(frozen=True)
class TicketFilter:
    status: str | None = None
    channel: str | None = None
    party: str | None = None
    assignee: str | None = None
    limit: int = 100


def ticket_summary(ticket: Ticket) -> dict[str, Any]:
    return {
        "reference": ticket.reference,
        "status": ticket.status,
        "channel": ticket.channel,
        "party": ticket.party,
        "language": ticket.language,
        "assignee": ticket.assignee,
        "priority": ticket.priority,
        "subject": ticket.subject,
        "requester": ticket.requester.name or ticket.requester.email,
        "created_at": ticket.created_at.isoformat(),
        "updated_at": ticket.updated_at.isoformat(),
        "first_response_at": ticket.first_response_at.isoformat() if ticket.first_response_at else None,
        "resolved_at": ticket.resolved_at.isoformat() if ticket.resolved_at else None,
        "closed_at": ticket.closed_at.isoformat() if ticket.closed_at else None,
        "classification": ticket.classification,
    }


async def list_tickets(desk: Desk, where: TicketFilter) -> list[dict[str, Any]]:
    query = (
        select(Ticket).options(selectinload(Ticket.requester)).order_by(Ticket.id.desc()).limit(where.limit)
    )
    if where.status == "active":
        query = query.where(Ticket.status.in_(lifecycle.ACTIVE))
    elif where.status:
        query = query.where(Ticket.status == where.status)
    if where.channel:
        query = query.where(Ticket.channel == where.channel)
    if where.party:
        query = query.where(Ticket.party == where.party.upper())
    if where.assignee == "none":
        query = query.where(Ticket.assignee.is_(None))
    elif where.assignee:
        query = query.where(Ticket.assignee == where.assignee)
    async with desk.sessions() as session:
        return [ticket_summary(t) for t in await session.scalars(query)]


async def show_ticket(desk: Desk, reference: str) -> dict[str, Any]:
    async with desk.sessions() as session:
        ticket = await get_ticket(session, reference)
        events = await session.scalars(
            select(AuditEvent).where(AuditEvent.ticket_id == ticket.id).order_by(AuditEvent.id)
        )
        deliveries = {
            item.message_id: item
            for item in await session.scalars(select(OutboxItem).where(OutboxItem.ticket_id == ticket.id))
        }
        requester = ticket.requester
        referrals = (await session.scalars(select(Referral).where(Referral.ticket_id == ticket.id))).unique()
        return {
            **ticket_summary(ticket),
            "requester": {
                "name": requester.name,
                "email": requester.email,
                "telegram_user_id": requester.telegram_user_id,
                "party": requester.party,
                "organisation": requester.organisation,
                "language": requester.language,
            },
            "tags": ticket.tags,
            "matches": ticket.matches,
            "messages": [
                {
                    "id": m.id,
                    "kind": m.kind,
                    "author": m.author,
                    "at": m.created_at.isoformat(),
                    "subject": m.subject,
                    "text": m.body,
                    "automatic": m.automatic,
                    # The sender is not proven (failed by the mail server, or an unproven staff address).
                    "unverified": m.unverified,
                    "attachments": [
                        {"id": a.id, "filename": a.filename, "size": a.size, "content_type": a.content_type}
                        for a in m.attachments
                    ],
                    "delivery": _delivery(deliveries.get(m.id)),
                }
                for m in ticket.messages
            ],
            "audit": [
                {"at": e.created_at.isoformat(), "actor": e.actor, "action": e.action, "detail": e.detail}
                for e in events
            ],
            "referrals": [
                {
                    "id": r.id,
                    "expert": r.expert_id,
                    "organisation": r.organisation,
                    "channel": r.channel,
                    "state": r.state,
                    "stage": r.stage,
                    "offered_at": r.offered_at.isoformat(),
                    "answered_at": _at(r.answered_at),
                    "consent": r.consent,
                    "introduced_at": _at(r.introduced_at),
                    "cooperation_at": _at(r.cooperation_at),
                    "outcome": r.outcome,
                    "outcome_text": r.outcome_text,
                }
                for r in sorted(referrals, key=lambda r: r.id)
            ],
        }


def _at(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def _delivery(item: OutboxItem | None) -> dict[str, Any] | None:
    if item is None:
        return None
    return {"status": item.status, "attempts": item.attempts, "last_error": item.last_error}


async def requester_tickets(desk: Desk, reference: str, limit: int = 20) -> list[dict[str, Any]]:
    """The other tickets of the requester of ``reference``, newest first."""
    async with desk.sessions() as session:
        ticket = await get_ticket(session, reference)
        query = (
            select(Ticket)
            .options(selectinload(Ticket.requester))
            .where(Ticket.requester_id == ticket.requester_id, Ticket.id != ticket.id)
            .order_by(Ticket.id.desc())
            .limit(limit)
        )
        return [ticket_summary(t) for t in await session.scalars(query)]


@dataclass(frozen=True)
class AttachmentFile:
    filename: str
    content_type: str
    data: bytes


async def attachment_file(desk: Desk, reference: str, attachment_id: int) -> AttachmentFile | None:
    """The stored file ``attachment_id`` if it belongs to ticket ``reference`` and still has its bytes."""
    async with desk.sessions() as session:
        row = (
            await session.execute(
                select(Attachment.filename, Attachment.content_type, Attachment.data)
                .join(Message, Message.id == Attachment.message_id)
                .join(Ticket, Ticket.id == Message.ticket_id)
                .where(Attachment.id == attachment_id, Ticket.reference == reference)
            )
        ).first()
    if row is None or row.data is None:
        return None
    return AttachmentFile(row.filename, row.content_type, row.data)
