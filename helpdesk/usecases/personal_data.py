"""Personal data: export everything held on a person, forget a person, and anonymise old closed tickets.

What is kept when a person is forgotten (or a ticket falls under the retention period) is what the reports
count: the ticket rows with their reference, channel, status, Party, language, priority, assignee, times,
classification (targets, core functions, scores; the evidence, which quotes words of the request, is
cleared) and matches (drawn from the knowledge base), and the outbox rows with their status, times and the
resources an acknowledgement carried. Everything that says who the person is or what they wrote goes:

- the requester row becomes a pseudonym, ``forgotten-<id>`` (stable: the same person always gets the same
  one, and a second run changes nothing);
- every message on their tickets (theirs, staff replies that address them and internal notes about them)
  loses its body, subject, HTML and channel id; their own messages on other tickets (as a Cc) too;
  attachments lose their data and file name (type and size stay);
- outbox items on their tickets or addressed to them lose their text, subject, HTML, threading ids and
  recipient; those still pending are cancelled (status ``failed``);
- ticket participations with their address are deleted; so are labelled examples made from their tickets
  (the classifier can learn nothing from an erased text, and deleting changes the fingerprint that makes a
  running service rebuild its classifier) and dead letters that mention their address or Telegram id;
- audit events: their actor string (``email:…``, ``telegram:…``) becomes the pseudonym; on their tickets
  only the enumerated detail values are kept (statuses, channels, assignees, numbers), free text goes;
- automatic-reply counters addressed to them carry the pseudonym.

One audit event (``requester_forgotten``) records that it happened, with the pseudonym and counts only.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Text, cast, delete, func, or_, select, true
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from helpdesk.db.models import (
    Attachment,
    AuditEvent,
    AutoReply,
    DeadLetter,
    LabelledExample,
    Message,
    OutboxItem,
    Requester,
    Ticket,
    TicketParticipant,
)
from helpdesk.db.types import utcnow
from helpdesk.desk import Desk
from helpdesk.reports.period import add_months

ERASED = "[erased]"
RETENTION_ACTOR = "helpdesk:retention"
# Audit detail values kept on a forgotten person's tickets: enumerations and staff names, never free text.
SAFE_DETAIL_KEYS = frozenset(
    {"channel", "status", "assignee", "language", "party", "kind", "attempted", "of"}
)
# "previous" is a status, an assignee or a language for these actions; for others (an edit) it is text.
SAFE_PREVIOUS_ACTIONS = frozenset({"status", "reopened", "assigned", "language", "party"})


@dataclass(frozen=True)
class Person:
    """Who to look for: an email address, a Telegram user id, or a requester's row id."""

    email: str | None = None
    telegram_id: int | None = None
    requester_id: int | None = None

    def __post_init__(self) -> None:
        given = [v for v in (self.email, self.telegram_id, self.requester_id) if v is not None]
        if len(given) != 1:
            raise ValueError("name the person by exactly one of email, Telegram id or requester id")

    def describe(self) -> str:
        if self.email is not None:
            return f"email {self.email}"
        if self.telegram_id is not None:
            return f"Telegram id {self.telegram_id}"
        return f"requester {self.requester_id}"


def pseudonym(requester_id: int) -> str:
    return f"forgotten-{requester_id}"


@dataclass
class _Identity:
    """Every identifier of a person: from the selector and from their requester rows."""

    requesters: list[Requester]
    emails: set[str] = field(default_factory=set)
    telegram_ids: set[int] = field(default_factory=set)
    names: set[str] = field(default_factory=set)

    @property
    def actors(self) -> set[str]:
        return {f"email:{e}" for e in self.emails} | {f"telegram:{t}" for t in self.telegram_ids}

    @property
    def recipients(self) -> set[str]:
        return self.emails | {str(t) for t in self.telegram_ids}

    @property
    def authors(self) -> set[str]:
        return self.emails | {str(t) for t in self.telegram_ids} | self.names

    def pattern(self) -> re.Pattern[str] | None:
        parts = [re.escape(e) for e in sorted(self.emails)]
        parts += [rf"(?<!\d){t}(?!\d)" for t in sorted(self.telegram_ids)]
        return re.compile("|".join(parts), re.IGNORECASE) if parts else None

    def label(self) -> str:
        return pseudonym(self.requesters[0].id) if self.requesters else "forgotten"


async def _identity(session: AsyncSession, person: Person) -> _Identity:
    query = select(Requester).order_by(Requester.id)
    if person.email is not None:
        query = query.where(func.lower(Requester.email) == person.email.strip().lower())
    elif person.telegram_id is not None:
        query = query.where(
            or_(
                Requester.telegram_user_id == person.telegram_id,
                Requester.telegram_chat_id == person.telegram_id,
            )
        )
    else:
        query = query.where(Requester.id == person.requester_id)
    requesters = list(await session.scalars(query))
    identity = _Identity(requesters)
    if person.email is not None:
        identity.emails.add(person.email.strip().lower())
    if person.telegram_id is not None:
        identity.telegram_ids.add(person.telegram_id)
    for requester in requesters:
        if requester.email:
            identity.emails.add(requester.email.lower())
        if requester.telegram_user_id is not None:
            identity.telegram_ids.add(requester.telegram_user_id)
            # A private chat's id is the user's id; a group's id belongs to the group, not to them.
            if requester.telegram_chat_id == requester.telegram_user_id:
                identity.telegram_ids.add(requester.telegram_chat_id)
        if requester.name and requester.name != pseudonym(requester.id):
            identity.names.add(requester.name)
    return identity


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


# --- export -------------------------------------------------------------------------------------------


async def export_person(
    desk: Desk, person: Person, *, include_notes: bool = True, include_attachment_data: bool = False
) -> dict[str, Any]:
    """Everything held on the person, as plain JSON-ready data (nothing about other requesters)."""
    async with desk.sessions() as session:
        identity = await _identity(session, person)
        requester_ids = [r.id for r in identity.requesters]
        tickets = list(
            await session.scalars(
                select(Ticket)
                .where(Ticket.requester_id.in_(requester_ids))
                .options(selectinload(Ticket.messages).selectinload(Message.attachments))
                .order_by(Ticket.id)
            )
        )
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

        other_messages: list[Message] = []
        if identity.authors:
            other_messages = list(
                await session.scalars(
                    select(Message)
                    .where(
                        Message.kind == "inbound",
                        Message.author.in_(identity.authors),
                        Message.ticket_id.not_in(ticket_ids) if ticket_ids else true(),
                    )
                    .options(selectinload(Message.attachments))
                    .order_by(Message.id)
                )
            )
        other_refs = await _references(session, {m.ticket_id for m in other_messages})

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
        outbox = await _outbox_for(session, identity, set())
        auto_replies = (
            list(
                await session.scalars(
                    select(AutoReply).where(AutoReply.recipient.in_(identity.emails)).order_by(AutoReply.id)
                )
            )
            if identity.emails
            else []
        )
        dead_letters = await _dead_letters_for(session, identity)
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
            | await _references(
                session,
                {p.ticket_id for p in participations}
                | {e.ticket_id for e in audit_events if e.ticket_id is not None}
                | {o.ticket_id for o in outbox if o.ticket_id is not None},
            )
        )

        return {
            "person": person.describe(),
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


async def _references(session: AsyncSession, ticket_ids: Iterable[int | None]) -> dict[int, str]:
    ids = {i for i in ticket_ids if i is not None}
    if not ids:
        return {}
    rows = await session.execute(select(Ticket.id, Ticket.reference).where(Ticket.id.in_(ids)))
    return {i: r for i, r in rows.all()}


async def _outbox_for(session: AsyncSession, identity: _Identity, ticket_ids: set[int]) -> list[OutboxItem]:
    """Outbox items addressed to the person, plus (when given) every item on their tickets."""
    conditions = []
    if identity.recipients:
        conditions.append(OutboxItem.payload["recipient"].as_string().in_(identity.recipients))
    if ticket_ids:
        conditions.append(OutboxItem.ticket_id.in_(ticket_ids))
    if not conditions:
        return []
    items = list(await session.scalars(select(OutboxItem).where(or_(*conditions)).order_by(OutboxItem.id)))
    # Email addresses compare without case: catch "Aziza@…" too.
    if identity.emails:
        seen = {i.id for i in items}
        for item in await session.scalars(
            select(OutboxItem).where(
                func.lower(OutboxItem.payload["recipient"].as_string()).in_(identity.emails)
            )
        ):
            if item.id not in seen:
                items.append(item)
    return items


async def _dead_letters_for(session: AsyncSession, identity: _Identity) -> list[DeadLetter]:
    """Dead letters whose raw bytes carry the person's address or Telegram id (read one at a time)."""
    needles = [re.escape(e.encode()) for e in identity.emails]
    needles += [rb"(?<!\d)" + str(t).encode() + rb"(?!\d)" for t in identity.telegram_ids]
    if not needles:
        return []
    pattern = re.compile(b"|".join(needles), re.IGNORECASE)
    found: list[DeadLetter] = []
    for letter_id in list(await session.scalars(select(DeadLetter.id).order_by(DeadLetter.id))):
        letter = await session.get(DeadLetter, letter_id)
        if letter is not None and pattern.search(letter.raw):
            found.append(letter)
        elif letter is not None:
            session.expunge(letter)  # do not keep every raw message in memory
    return found


# --- forget -------------------------------------------------------------------------------------------


@dataclass
class ForgetResult:
    pseudonym: str | None
    requesters: int = 0
    tickets: int = 0
    messages: int = 0
    attachments: int = 0
    outbox_items: int = 0
    participations: int = 0
    audit_events: int = 0
    dead_letters: int = 0
    labelled_examples: int = 0
    automatic_replies: int = 0

    def counts(self) -> dict[str, int]:
        return {k: v for k, v in self.__dict__.items() if isinstance(v, int)}

    @property
    def found(self) -> bool:
        return any(self.counts().values())


async def forget_person(desk: Desk, person: Person, *, actor: str) -> ForgetResult:
    """Erase or anonymise the person everywhere, keeping the tickets' statistics; safe to run again."""
    async with desk.sessions.begin() as session:
        identity = await _identity(session, person)
        result = await _forget(session, identity)
        if result.found:
            session.add(
                AuditEvent(
                    ticket_id=None,
                    actor=actor,
                    action="requester_forgotten",
                    detail={"pseudonym": result.pseudonym, **result.counts()},
                )
            )
    return result


async def _forget(session: AsyncSession, identity: _Identity) -> ForgetResult:
    label = identity.label()
    result = ForgetResult(pseudonym=label if identity.requesters else None)
    pattern = identity.pattern()
    requester_ids = [r.id for r in identity.requesters]
    tickets = (
        list(
            await session.scalars(
                select(Ticket)
                .where(Ticket.requester_id.in_(requester_ids))
                .options(selectinload(Ticket.messages).selectinload(Message.attachments))
                .order_by(Ticket.id)
            )
        )
        if requester_ids
        else []
    )
    ticket_ids = {t.id for t in tickets}
    for ticket in tickets:
        changed = _scrub_ticket(ticket, identity, label)
        result.tickets += 1 if changed else 0
        for message in ticket.messages:
            m, a = _scrub_message(message, identity, label)
            result.messages += m
            result.attachments += a

    # Their own messages on other people's tickets (they were in Cc).
    if identity.authors:
        others = await session.scalars(
            select(Message)
            .where(
                Message.kind == "inbound",
                Message.author.in_(identity.authors),
                Message.ticket_id.not_in(ticket_ids) if ticket_ids else true(),
            )
            .options(selectinload(Message.attachments))
        )
        for message in others:
            m, a = _scrub_message(message, identity, label)
            result.messages += m
            result.attachments += a

    for item in await _outbox_for(session, identity, ticket_ids):
        result.outbox_items += 1 if _scrub_outbox(item, identity, label, pattern) else 0

    if identity.emails:
        deleted = await session.execute(
            delete(TicketParticipant).where(func.lower(TicketParticipant.email).in_(identity.emails))
        )
        result.participations += deleted.rowcount or 0
        for reply in await session.scalars(
            select(AutoReply).where(func.lower(AutoReply.recipient).in_(identity.emails))
        ):
            reply.recipient = label
            result.automatic_replies += 1

    audit_conditions = []
    if identity.actors:
        audit_conditions.append(AuditEvent.actor.in_(identity.actors))
    if ticket_ids:
        audit_conditions.append(AuditEvent.ticket_id.in_(ticket_ids))
    events = (
        list(await session.scalars(select(AuditEvent).where(or_(*audit_conditions))))
        if audit_conditions
        else []
    )
    if pattern is not None:
        # Elsewhere an address can sit in a detail (a suppressed receipt's recipient): find it as text.
        seen = {e.id for e in events}
        as_text = func.lower(cast(AuditEvent.detail, Text))
        needles = [*identity.emails, *(str(t) for t in identity.telegram_ids)]
        for event in await session.scalars(
            select(AuditEvent).where(or_(*(as_text.contains(n.lower(), autoescape=True) for n in needles)))
        ):
            if event.id not in seen and pattern.search(json.dumps(event.detail, ensure_ascii=False)):
                events.append(event)
    for event in events:
        result.audit_events += 1 if _scrub_event(event, identity, label, pattern, ticket_ids) else 0

    for letter in await _dead_letters_for(session, identity):
        await session.delete(letter)
        result.dead_letters += 1

    if ticket_ids:
        deleted = await session.execute(
            delete(LabelledExample).where(LabelledExample.ticket_id.in_(ticket_ids))
        )
        result.labelled_examples += deleted.rowcount or 0

    for requester in identity.requesters:
        name = pseudonym(requester.id)
        before = (requester.name, requester.email, requester.telegram_user_id, requester.telegram_chat_id)
        requester.name = name
        requester.email = None
        requester.telegram_user_id = None
        requester.telegram_chat_id = None
        requester.organisation = None
        if before != (name, None, None, None):
            result.requesters += 1
    await session.flush()
    return result


def _is_forgotten(requester: Requester) -> bool:
    return (
        requester.name == pseudonym(requester.id)
        and requester.email is None
        and requester.telegram_user_id is None
        and requester.telegram_chat_id is None
    )


def _scrub_ticket(ticket: Ticket, identity: _Identity | None, label: str) -> bool:
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


def _scrub_message(message: Message, identity: _Identity | None, label: str) -> tuple[int, int]:
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


def _scrub_outbox(
    item: OutboxItem, identity: _Identity | None, label: str, pattern: re.Pattern[str] | None
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


def _scrub_event(
    event: AuditEvent,
    identity: _Identity | None,
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
        event.detail = _safe_detail(event.action, event.detail or {}, pattern, label)
    else:
        event.detail = _replace(event.detail or {}, pattern, label)
    return (event.actor, event.detail) != before


def _safe_detail(
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


# --- retention ----------------------------------------------------------------------------------------


@dataclass
class RetentionResult:
    cutoff: datetime
    tickets: list[str] = field(default_factory=list)
    requesters: list[str] = field(default_factory=list)
    applied: bool = False


def retention_cutoff(months: int, now: datetime | None = None) -> datetime:
    now = now or utcnow()
    first = add_months(now.date().replace(day=1), -months)
    # Same day of the month, N months back (the 31st becomes the month's last day).
    day = now.day
    while True:
        try:
            return now.replace(year=first.year, month=first.month, day=day)
        except ValueError:
            day -= 1


async def apply_retention(
    desk: Desk, months: int, *, apply: bool, now: datetime | None = None, batch: int = 200
) -> RetentionResult:
    """Anonymise tickets closed more than `months` ago (and requesters with nothing newer); idempotent.

    With ``apply=False`` only reports what would change. Already anonymised tickets (marked by their
    ``anonymised`` audit event) are skipped, so running it every hour costs one query.
    """
    if months <= 0:
        raise ValueError("the retention period must be at least one month")
    cutoff = retention_cutoff(months, now)
    result = RetentionResult(cutoff=cutoff, applied=apply)
    done = select(AuditEvent.ticket_id).where(
        AuditEvent.action == "anonymised", AuditEvent.ticket_id.is_not(None)
    )
    due = (
        select(Ticket.id)
        .where(Ticket.status == "closed", Ticket.closed_at.is_not(None), Ticket.closed_at < cutoff)
        .where(Ticket.id.not_in(done))
        .order_by(Ticket.id)
    )
    async with desk.sessions() as session:
        ticket_ids = list(await session.scalars(due))
    for start in range(0, len(ticket_ids), batch):
        chunk = ticket_ids[start : start + batch]
        async with desk.sessions.begin() as session:
            await _retain_chunk(session, chunk, result, apply=apply, cutoff=cutoff)
    return result


async def _retain_chunk(
    session: AsyncSession,
    ticket_ids: Sequence[int],
    result: RetentionResult,
    *,
    apply: bool,
    cutoff: datetime,
) -> None:
    tickets = list(
        await session.scalars(
            select(Ticket)
            .where(Ticket.id.in_(ticket_ids))
            .options(selectinload(Ticket.messages).selectinload(Message.attachments))
            .with_for_update(of=Ticket)
            .order_by(Ticket.id)
        )
    )
    requester_ids = set()
    for ticket in tickets:
        # Reopened since it was listed: not due any more.
        if ticket.status != "closed" or ticket.closed_at is None or ticket.closed_at >= cutoff:
            continue
        result.tickets.append(ticket.reference)
        requester_ids.add(ticket.requester_id)
        if not apply:
            continue
        _scrub_ticket(ticket, None, "")
        for message in ticket.messages:
            _scrub_message(message, None, "")
        for item in await session.scalars(select(OutboxItem).where(OutboxItem.ticket_id == ticket.id)):
            _scrub_outbox(item, None, "", None)
        for event in await session.scalars(select(AuditEvent).where(AuditEvent.ticket_id == ticket.id)):
            event.detail = _safe_detail(event.action, event.detail or {}, None, "")
        await session.execute(delete(TicketParticipant).where(TicketParticipant.ticket_id == ticket.id))
        await session.execute(delete(LabelledExample).where(LabelledExample.ticket_id == ticket.id))
        session.add(AuditEvent(ticket_id=ticket.id, actor=RETENTION_ACTOR, action="anonymised", detail={}))
    await session.flush()
    # A requester whose every ticket is now anonymised (or due) is forgotten as a whole.
    for requester_id in sorted(requester_ids):
        newer = await session.scalar(
            select(func.count(Ticket.id)).where(
                Ticket.requester_id == requester_id,
                or_(Ticket.status != "closed", Ticket.closed_at.is_(None), Ticket.closed_at >= cutoff),
            )
        )
        if newer:
            continue
        requester = await session.get(Requester, requester_id)
        if requester is None or _is_forgotten(requester):
            continue
        result.requesters.append(pseudonym(requester_id))
        if apply:
            identity = await _identity(session, Person(requester_id=requester_id))
            forgotten = await _forget(session, identity)
            session.add(
                AuditEvent(
                    ticket_id=None,
                    actor=RETENTION_ACTOR,
                    action="requester_forgotten",
                    detail={"pseudonym": forgotten.pseudonym, **forgotten.counts()},
                )
            )
