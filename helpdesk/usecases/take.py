"""Everything the desk does with one chat message before it is safe, as one unit a caller can retry.

The question "which of your tickets does this continue?" reads the database just like receiving does, and
opening it (or holding a message with it) writes there: all belong to the same unit, so a database hiccup
in any of them is retried (or the message kept and replayed) instead of losing a message the channel has
already confirmed. The conversation itself is declared in :mod:`helpdesk.usecases.followup_question`.
"""

from __future__ import annotations

from dataclasses import replace

from sqlalchemy import select

from helpdesk.db.models import Message
from helpdesk.desk import Desk
from helpdesk.messages import InboundMessage
from helpdesk.usecases.followup_question import Asked, Held, Joins, ask, hold
from helpdesk.usecases.receive import ReceiveResult, receive
from helpdesk.usecases.self_service import followup_choices


async def take_message(desk: Desk, inbound: InboundMessage) -> ReceiveResult | Asked | Held:
    """Receive ``inbound``, unless it is unclear which ticket it continues: then ask (or hold it with the
    question already asked in its chat).

    Repeating it is safe: a message already stored is found again by its channel id, one already held is
    not held twice.
    """
    sender = inbound.sender
    if not (inbound.force_new or inbound.continues) and sender.telegram_user_id is not None:
        async with desk.sessions.begin() as session:
            waiting = await hold(session, inbound)
        if isinstance(waiting, Held):
            return waiting
        if isinstance(waiting, Joins):
            inbound = replace(inbound, continues=waiting.reference)
        elif isinstance(waiting, Asked):
            # An earlier attempt opened the question and lost its answer: offer the choices again.
            return Asked(waiting.token, await followup_choices(desk, inbound) or [])
    choices = await followup_choices(desk, inbound)
    if choices and not await _stored(desk, inbound):
        # (Stored already means an earlier attempt committed before its connection broke: no question.)
        async with desk.sessions.begin() as session:
            return await ask(session, inbound, choices)
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
