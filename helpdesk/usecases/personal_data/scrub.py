"""How one row loses what says who someone is or what they wrote: shared by forget and retention.

Each function scrubs one kind of row in place and says whether it changed, so a second run counts nothing.
With an ``Identity`` (forget) the person's identifiers become their pseudonym; without one (retention, a
ticket past the retention period) only the free text goes.
"""

from __future__ import annotations

import re
from typing import Any

from helpdesk.db.models import AuditEvent, Message, OutboxItem, Ticket
from helpdesk.usecases.personal_data.person import Identity

ERASED = "[erased]"
# Audit detail values kept on a forgotten person's tickets: enumerations and staff names, never free text.
SAFE_DETAIL_KEYS = frozenset(
    {"channel", "status", "assignee", "language", "party", "kind", "attempted", "of"}
)
# "previous" is a status, an assignee or a language for these actions; for others (an edit) it is text.
SAFE_PREVIOUS_ACTIONS = frozenset({"status", "reopened", "assigned", "language", "party"})


def scrub_ticket(ticket: Ticket, identity: Identity | None, label: str) -> bool:
    changed = ticket.subject != ERASED or ticket.telegram_chat_id is not None
    ticket.subject = ERASED
    # Replies can no longer reach them; a group's chat id would only say where they asked.
    ticket.telegram_chat_id = None
    if ticket.classification is not None:
        cleared = _without_evidence(ticket.classification)
        if cleared != ticket.classification:
            ticket.classification = cleared
            changed = True
    return changed


def _without_evidence(classification: dict[str, Any]) -> dict[str, Any]:
    """The classification with the quoted words of the request left out (scores and numbers kept)."""
    data = dict(classification)
    for key in ("targets", "core_functions"):
        if isinstance(data.get(key), list):
            data[key] = [
                {**entry, "evidence": []} if isinstance(entry, dict) and "evidence" in entry else entry
                for entry in data[key]
            ]
    return data


def scrub_message(message: Message, identity: Identity | None, label: str) -> tuple[int, int]:
    changed = 0
    if message.body != ERASED or message.subject is not None or message.html is not None:
        changed = 1
    message.body = ERASED
    message.subject = None
    message.html = None
    forgotten_id = f"erased:{message.id}"
    if message.channel_message_id is not None and message.channel_message_id != forgotten_id:
        message.channel_message_id = forgotten_id
        changed = 1
    if identity is not None and message.author in identity.authors:
        message.author = label
        changed = 1
    attachments = 0
    for attachment in message.attachments:
        name = f"attachment-{attachment.id}"
        if attachment.data is not None or attachment.filename != name:
            attachments += 1
        attachment.data = None
        attachment.filename = name
    return changed, attachments


def scrub_outbox(
    item: OutboxItem, identity: Identity | None, label: str, pattern: re.Pattern[str] | None
) -> bool:
    payload = dict(item.payload)
    recipient = str(payload.get("recipient") or "")
    if identity is not None and recipient.lower() in identity.recipients:
        payload["recipient"] = label
    for key in ("text",):
        if payload.get(key) not in (None, ERASED):
            payload[key] = ERASED
    for key in ("subject", "html", "in_reply_to"):
        payload[key] = None
    payload["references"] = []
    if payload.get("extra"):
        payload["extra"] = _replace(payload["extra"], pattern)
    changed = payload != item.payload
    item.payload = payload
    if item.status == "pending" and not _is_card(item):
        item.status = "failed"
        item.last_error = "cancelled: the requester was forgotten"
        changed = True
    for attribute in ("last_error", "sent_id"):
        value = getattr(item, attribute)
        if pattern is not None and value and pattern.search(value):
            setattr(item, attribute, pattern.sub(label, value))
            changed = True
    return changed


def _is_card(item: OutboxItem) -> bool:
    return (item.payload.get("extra") or {}).get("card_ticket_id") is not None


def scrub_event(
    event: AuditEvent,
    identity: Identity | None,
    label: str,
    pattern: re.Pattern[str] | None,
    ticket_ids: set[int],
) -> bool:
    before = (event.actor, event.detail)
    if identity is not None and event.actor in identity.actors:
        event.actor = label
    elif pattern is not None and pattern.search(event.actor):
        event.actor = pattern.sub(label, event.actor)
    if event.ticket_id in ticket_ids or event.actor == label:
        event.detail = safe_detail(event.action, event.detail or {}, pattern, label)
    else:
        event.detail = _replace(event.detail or {}, pattern, label)
    return (event.actor, event.detail) != before


def safe_detail(
    action: str, detail: dict[str, Any], pattern: re.Pattern[str] | None, label: str
) -> dict[str, Any]:
    kept: dict[str, Any] = {}
    for key, value in detail.items():
        safe = key in SAFE_DETAIL_KEYS or (key == "previous" and action in SAFE_PREVIOUS_ACTIONS)
        kept[key] = _replace(value, pattern, label) if safe else _erase_text(value)
    return kept


def _erase_text(value: Any) -> Any:
    """Numbers, booleans and None stay (ids, counts, flags); any text is erased."""
    if isinstance(value, str):
        return ERASED
    if isinstance(value, dict):
        return {k: _erase_text(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_erase_text(v) for v in value]
    return value


def _replace(value: Any, pattern: re.Pattern[str] | None, label: str = "forgotten") -> Any:
    if pattern is None:
        return value
    if isinstance(value, str):
        return pattern.sub(label, value)
    if isinstance(value, dict):
        return {k: _replace(v, pattern, label) for k, v in value.items()}
    if isinstance(value, list):
        return [_replace(v, pattern, label) for v in value]
    return value
