"""Everything the desk does with one chat message before it is safe, as one unit a caller can retry.

The question "which of your tickets does this continue?" reads the database just like receiving does; both
belong to the same unit, so a database hiccup in either is retried (or the message kept and replayed)
instead of losing a message the channel has already confirmed.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from helpdesk.db.models import Message
from helpdesk.desk import Desk
from helpdesk.messages import InboundMessage
from helpdesk.usecases.receive import ReceiveResult, receive
from helpdesk.usecases.self_service import TicketBrief, followup_choices


@dataclass(frozen=True, slots=True)
class FollowupQuestion:
    """Nothing stored yet: the requester must choose which ticket the message continues (or a new one)."""

    choices: list[TicketBrief]


async def take_message(desk: Desk, inbound: InboundMessage) -> ReceiveResult | FollowupQuestion:
    """Receive ``inbound``, unless it is unclear which ticket it continues: then ask instead.

    Repeating it is safe: a message already stored is found again by its channel id.
    """
    choices = await followup_choices(desk, inbound)
    if choices and not await _stored(desk, inbound):
        # (Stored already means an earlier attempt committed before its connection broke: no question.)
        return FollowupQuestion(choices)
    return await receive(desk, inbound)


async def _stored(desk: Desk, inbound: InboundMessage) -> bool:
    async with desk.sessions() as session:
        found = await session.scalar(
            select(Message.id)
            .where(
                Message.channel == inbound.channel, Message.channel_message_id == inbound.channel_message_id
            )
            .limit(1)
        )
    return found is not None
