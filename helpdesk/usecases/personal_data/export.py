"""Export: everything held on a person, as plain JSON-ready data (nothing about other requesters)."""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Any

from sqlalchemy import func, select

from helpdesk.db.models import Attachment, AuditEvent, AutoReply, LabelledExample, Message, TicketParticipant
from helpdesk.db.types import utcnow
from helpdesk.desk import Desk
from helpdesk.usecases.personal_data.experts import export_expert
from helpdesk.usecases.personal_data.person import Person, identify
from helpdesk.usecases.personal_data.rows import (
    dead_letters_for,
    messages_elsewhere,
    outbox_for,
    ticket_references,
    tickets_of,
)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


async def export_person(
    desk: Desk, person: Person, *, include_notes: bool = True, include_attachment_data: bool = False
) -> dict[str, Any]:
    """Everything held on the person, as plain JSON-ready data (nothing about other requesters)."""
    async with desk.sessions() as session:
        identity = await identify(session, person)
        tickets = await tickets_of(session, identity)
        ticket_ids = {t.id for t in tickets}
        references = {t.id: t.reference for t in tickets}

        def message_json(message: Message) -> dict[str, Any]:
            return {
                "id": message.id,
                "kind": message.kind,
                "channel": message.channel,
                "author": message.author,
                "subject": message.subject,
                "body": message.body,
                "html": message.html,
                "automatic": message.automatic,
                "created_at": _iso(message.created_at),
                "attachments": [attachment_json(a) for a in message.attachments],
            }

        def attachment_json(attachment: Attachment) -> dict[str, Any]:
            data: dict[str, Any] = {
                "id": attachment.id,
                "filename": attachment.filename,
                "content_type": attachment.content_type,
                "size": attachment.size,
                "stored": attachment.data is not None,
            }
            if include_attachment_data and attachment.data is not None:
                data["data_base64"] = base64.b64encode(attachment.data).decode("ascii")
            return data

        other_messages = await messages_elsewhere(session, identity, ticket_ids)
        other_refs = await ticket_references(session, {m.ticket_id for m in other_messages})

        participations = (
            list(
                await session.scalars(
                    select(TicketParticipant)
                    .where(func.lower(TicketParticipant.email).in_(identity.emails))
                    .order_by(TicketParticipant.id)
                )
            )
            if identity.emails
            else []
        )
        audit_events = (
            list(
                await session.scalars(
                    select(AuditEvent).where(AuditEvent.actor.in_(identity.actors)).order_by(AuditEvent.id)
                )
            )
            if identity.actors
            else []
        )
        outbox = await outbox_for(session, identity, set())
        auto_replies = (
            list(
                await session.scalars(
                    select(AutoReply).where(AutoReply.recipient.in_(identity.emails)).order_by(AutoReply.id)
                )
            )
            if identity.emails
            else []
        )
        dead_letters = await dead_letters_for(session, identity)
        examples = (
            list(
                await session.scalars(
                    select(LabelledExample)
                    .where(LabelledExample.ticket_id.in_(ticket_ids))
                    .order_by(LabelledExample.id)
                )
            )
            if ticket_ids
            else []
        )
        refs = (
            references
            | other_refs
            | await ticket_references(
                session,
                {p.ticket_id for p in participations}
                | {e.ticket_id for e in audit_events if e.ticket_id is not None}
                | {o.ticket_id for o in outbox if o.ticket_id is not None},
            )
        )

        as_expert = await export_expert(session, identity)
        return {
            "person": person.describe(),
            "as_expert": as_expert,
            "exported_at": utcnow().isoformat(),
            "internal_notes_included": include_notes,
            "requesters": [
                {
                    "id": r.id,
                    "name": r.name,
                    "email": r.email,
                    "telegram_user_id": r.telegram_user_id,
                    "telegram_chat_id": r.telegram_chat_id,
                    "party": r.party,
                    "organisation": r.organisation,
                    "language": r.language,
                    "language_chosen": r.language_chosen,
                    "created_at": _iso(r.created_at),
                }
                for r in identity.requesters
            ],
            "tickets": [
                {
                    "reference": t.reference,
                    "subject": t.subject,
                    "channel": t.channel,
                    "status": t.status,
                    "priority": t.priority,
                    "party": t.party,
                    "language": t.language,
                    "assignee": t.assignee,
                    "tags": t.tags,
                    "classification": t.classification,
                    "created_at": _iso(t.created_at),
                    "first_response_at": _iso(t.first_response_at),
                    "resolved_at": _iso(t.resolved_at),
                    "closed_at": _iso(t.closed_at),
                    "messages": [message_json(m) for m in t.messages if include_notes or m.kind != "note"],
                }
                for t in tickets
            ],
            "messages_on_other_tickets": [
                {"ticket": refs.get(m.ticket_id), **message_json(m)} for m in other_messages
            ],
            "participations": [
                {"ticket": refs.get(p.ticket_id), "email": p.email, "created_at": _iso(p.created_at)}
                for p in participations
            ],
            "audit_events": [
                {
                    "ticket": refs.get(e.ticket_id) if e.ticket_id is not None else None,
                    "actor": e.actor,
                    "action": e.action,
                    "detail": e.detail,
                    "created_at": _iso(e.created_at),
                }
                for e in audit_events
            ],
            "outbox": [
                {
                    "id": o.id,
                    "ticket": refs.get(o.ticket_id) if o.ticket_id is not None else None,
                    "channel": o.channel,
                    "status": o.status,
                    "recipient": o.payload.get("recipient"),
                    "subject": o.payload.get("subject"),
                    "text": o.payload.get("text"),
                    "created_at": _iso(o.created_at),
                    "sent_at": _iso(o.sent_at),
                }
                for o in outbox
            ],
            "automatic_replies": [
                {"kind": a.kind, "recipient": a.recipient, "created_at": _iso(a.created_at)}
                for a in auto_replies
            ],
            "dead_letters": [
                {
                    "id": d.id,
                    "status": d.status,
                    "reason": d.reason,
                    "size": d.size,
                    "received_at": _iso(d.created_at),
                    "raw": d.raw.decode("utf-8", "replace"),
                }
                for d in dead_letters
            ],
            "labelled_examples": [
                {
                    "ticket": refs.get(x.ticket_id) if x.ticket_id is not None else None,
                    "text": x.text,
                    "targets": x.targets,
                    "core_functions": x.core_functions,
                    "created_at": _iso(x.created_at),
                }
                for x in examples
            ],
        }
