"""What happened to a ticket, and who reacts to it: use-cases record an event, ``HANDLERS`` says what follows.

A use-case records the event inside its own transaction (``record``), and the handlers run there at once,
before the commit: the staff card refresh and the staff notification mails land in the outbox together
with the change they are about, exactly as when each use-case queued them itself. To make something new
react to a ticket's change, add a handler to the table below; no use-case needs to change.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk.db.models import Ticket
from helpdesk.desk import Desk
from helpdesk.messages import InboundMessage
from helpdesk.usecases.cards import queue_card
from helpdesk.usecases.staff_notifications import notify_staff


@dataclass(frozen=True, slots=True)
class TicketEvent:
    ticket: Ticket


@dataclass(frozen=True, slots=True)
class MessageReceived(TicketEvent):
    """A message from outside arrived on the ticket (``created``: it opened the ticket)."""

    inbound: InboundMessage
    created: bool
    # False for mail the trusted server failed: kept on the ticket, but staff are not told it moved.
    moves_ticket: bool = True
    unverified_staff: bool = False
    # Who the threading rules found the sender to be on the ticket (requester, participant, staff, ...).
    sender_role: str | None = None


@dataclass(frozen=True, slots=True)
class Replied(TicketEvent):
    """Staff answered the requester."""


@dataclass(frozen=True, slots=True)
class Reassigned(TicketEvent):
    pass


@dataclass(frozen=True, slots=True)
class StatusChanged(TicketEvent):
    pass


@dataclass(frozen=True, slots=True)
class Reclassified(TicketEvent):
    pass


@dataclass(frozen=True, slots=True)
class Noted(TicketEvent):
    """Staff added an internal note."""


@dataclass(frozen=True, slots=True)
class ReferralChanged(TicketEvent):
    """A referral was made, answered, reminded, given up on, introduced or closed with an outcome."""


@dataclass(frozen=True, slots=True)
class Merged(TicketEvent):
    """Another ticket's conversation was moved into this one, or this one into another (and closed)."""


@dataclass(frozen=True, slots=True)
class RequesterChanged(TicketEvent):
    """The requester changed something the card shows: language, Party, an edited message, the bot blocked."""


Handler = Callable[[Desk, AsyncSession, TicketEvent], Awaitable[None]]


async def _notify_staff(desk: Desk, session: AsyncSession, event: TicketEvent) -> None:
    assert isinstance(event, MessageReceived)
    if event.moves_ticket:
        await notify_staff(
            desk,
            session,
            event.ticket,
            event.inbound,
            created=event.created,
            unverified=event.unverified_staff,
        )


async def _refresh_card(desk: Desk, session: AsyncSession, event: TicketEvent) -> None:
    await queue_card(desk, session, event.ticket)


async def _refresh_card_settled(desk: Desk, session: AsyncSession, event: TicketEvent) -> None:
    # Inbound bursts: the card is redrawn once they settle, not once per message (issue 10 flood limits).
    await queue_card(desk, session, event.ticket, settle_seconds=desk.limits.card_refresh_seconds)


# What follows each event, in order.
HANDLERS: dict[type[TicketEvent], tuple[Handler, ...]] = {
    MessageReceived: (_notify_staff, _refresh_card_settled),
    Replied: (_refresh_card,),
    Reassigned: (_refresh_card,),
    StatusChanged: (_refresh_card,),
    Reclassified: (_refresh_card,),
    Noted: (_refresh_card,),
    Merged: (_refresh_card,),
    RequesterChanged: (_refresh_card,),
    ReferralChanged: (_refresh_card,),
}


async def record(desk: Desk, session: AsyncSession, event: TicketEvent) -> None:
    """Run the handlers of ``event`` in the caller's transaction."""
    for handler in HANDLERS[type(event)]:
        await handler(desk, session, event)
