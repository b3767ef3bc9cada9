"""A staff reply: stored on the ticket and queued for the requester's own channel."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk import lifecycle
from helpdesk.db.models import Message, Ticket
from helpdesk.db.types import utcnow
from helpdesk.desk import Desk
from helpdesk.outbox import enqueue
from helpdesk.usecases import events
from helpdesk.usecases.errors import DeskError, InvalidTransition
from helpdesk.usecases.tickets import audit, get_ticket

# What a staff member must have seen before answering: what the requester and other staff said.
CONVERSATION = ("inbound", "outbound")


class StaleReply(DeskError):
    """The reply was written on a page older than the conversation: newer messages came in meanwhile."""

    def __init__(self, reference: str, newer: list[Message]) -> None:
        super().__init__(f"{reference}: {len(newer)} newer message(s) arrived since this reply was started")
        self.newer_ids = [m.id for m in newer]


async def reply(
    desk: Desk,
    reference: str,
    text: str,
    *,
    actor: str,
    seen: int | None = None,
    resources: Sequence[str] = (),
) -> Ticket:
    """``seen``: the newest message id the writer saw; a newer requester or staff message refuses the reply
    (``StaleReply``) so they read it first. ``resources``: URLs of the ticket's matched resources to append
    (only those the ticket was matched to; anything else is refused)."""
    text = text.strip()
    if not text:
        raise InvalidTransition("a reply needs some text")
    async with desk.sessions.begin() as session:
        ticket = await get_ticket(session, reference, for_update=True)
        if seen is not None:
            newer = [m for m in ticket.messages if m.id > seen and m.kind in CONVERSATION]
            if newer:
                raise StaleReply(ticket.reference, newer)
        text = with_resources(ticket, text, resources)
        await reply_in_session(desk, session, ticket, text, actor=actor)
    desk.outbox_written()
    return ticket


async def reply_in_session(
    desk: Desk,
    session: AsyncSession,
    ticket: Ticket,
    text: str,
    *,
    actor: str,
    consent_for: int | None = None,
) -> Message:
    """The reply inside the caller's transaction (``ticket`` with its requester and messages loaded).

    Used by ``reply`` and by email intake, where a staff member's mail to a ticket is a staff reply; with
    ``consent_for`` (a referral's id) it is the requester's consent question (``introductions``).
    """
    text = text.strip()
    if not text:
        raise InvalidTransition("a reply needs some text")
    lifecycle.next_status(ticket, lifecycle.Move.REPLY)  # refused before anything is queued
    composer = desk.composer(ticket.channel)
    if consent_for is None:
        outbound = composer.reply(ticket, text, mail_domain=desk.mail_domain)
    else:
        outbound = composer.consent_question(ticket, text, consent_for, mail_domain=desk.mail_domain)
    message = Message(
        ticket_id=ticket.id,
        kind="outbound",
        channel=ticket.channel,
        author=actor,
        subject=outbound.subject,
        body=text,
        html=outbound.html,
        channel_message_id=outbound.message_id,
    )
    session.add(message)
    await enqueue(session, ticket, message, outbound)
    now = utcnow()
    if ticket.first_response_at is None:
        ticket.first_response_at = now
    lifecycle.apply(ticket, lifecycle.Move.REPLY, now)
    ticket.updated_at = now
    await session.flush()  # the audit event names the reply's id
    audit(session, ticket, actor, "replied", message_id=message.id)
    await events.record(desk, session, events.Replied(ticket))
    return message


def with_resources(ticket: Ticket, text: str, urls: Sequence[str]) -> str:
    """The reply with the chosen matched resources' titles and links after it, in the ticket's language."""
    if not urls:
        return text
    matched = {r.get("url"): r for r in (ticket.matches or {}).get("resources") or [] if r.get("url")}
    unknown = [u for u in urls if u not in matched]
    if unknown:
        raise InvalidTransition("only the resources matched to this ticket can be attached")
    lines = []
    for url in dict.fromkeys(urls):
        title = matched[url].get("title")
        if isinstance(title, dict):
            title = title.get(ticket.language or "en") or title.get("en") or next(iter(title.values()), "")
        lines.append(f"- {title} — {url}" if title else f"- {url}")
    return text + "\n\n" + "\n".join(lines)
