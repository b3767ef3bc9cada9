"""Where a person's rows are: their tickets, their messages on other tickets, outbox items, dead letters.

Export reads these rows and forget scrubs them, so both find them here, the same way.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from sqlalchemy import func, or_, select, true
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from helpdesk.db.models import DeadLetter, Message, OutboxItem, Ticket
from helpdesk.usecases.personal_data.person import Identity


async def tickets_of(session: AsyncSession, identity: Identity) -> list[Ticket]:
    """The tickets they asked, with every message and attachment loaded."""
    if not identity.requesters:
        return []
    return list(
        await session.scalars(
            select(Ticket)
            .where(Ticket.requester_id.in_(identity.requester_ids))
            .options(selectinload(Ticket.messages).selectinload(Message.attachments))
            .order_by(Ticket.id)
        )
    )


async def messages_elsewhere(
    session: AsyncSession, identity: Identity, ticket_ids: set[int]
) -> list[Message]:
    """What they wrote on tickets other than `ticket_ids` (their own): they were in Cc."""
    if not identity.authors:
        return []
    return list(
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


async def ticket_references(session: AsyncSession, ticket_ids: Iterable[int | None]) -> dict[int, str]:
    ids = {i for i in ticket_ids if i is not None}
    if not ids:
        return {}
    rows = await session.execute(select(Ticket.id, Ticket.reference).where(Ticket.id.in_(ids)))
    return {i: r for i, r in rows.all()}


async def outbox_for(session: AsyncSession, identity: Identity, ticket_ids: set[int]) -> list[OutboxItem]:
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


async def dead_letters_for(session: AsyncSession, identity: Identity) -> list[DeadLetter]:
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
