"""Tags on a ticket: short labels staff add and remove, each change audited."""

from __future__ import annotations

import re

from helpdesk.db.models import Ticket
from helpdesk.db.types import utcnow
from helpdesk.desk import Desk
from helpdesk.usecases.errors import InvalidTransition
from helpdesk.usecases.tickets import audit, get_ticket

# Letters, digits, "-" and "_" in any script, lower-cased: a tag is a label, not text to render.
TAG = re.compile(r"^[\w-]{1,40}$")
MAX_TAGS = 20


def tag_of(text: str) -> str:
    tag = text.strip().lower()
    if not TAG.match(tag):
        raise InvalidTransition("a tag is 1–40 letters, digits, '-' or '_'")
    return tag


async def add_tag(desk: Desk, reference: str, text: str, *, actor: str) -> Ticket:
    tag = tag_of(text)
    async with desk.sessions.begin() as session:
        ticket = await get_ticket(session, reference, for_update=True)
        if tag in ticket.tags:
            return ticket
        if len(ticket.tags) >= MAX_TAGS:
            raise InvalidTransition(f"{ticket.reference} has {MAX_TAGS} tags already; remove one first")
        ticket.tags = [*ticket.tags, tag]  # a new list: the JSON column sees the change
        ticket.updated_at = utcnow()
        audit(session, ticket, actor, "tagged", tag=tag)
    return ticket


async def remove_tag(desk: Desk, reference: str, text: str, *, actor: str) -> Ticket:
    tag = tag_of(text)
    async with desk.sessions.begin() as session:
        ticket = await get_ticket(session, reference, for_update=True)
        if tag not in ticket.tags:
            return ticket
        ticket.tags = [t for t in ticket.tags if t != tag]
        ticket.updated_at = utcnow()
        audit(session, ticket, actor, "untagged", tag=tag)
    return ticket
