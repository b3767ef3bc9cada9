"""A lone Telegram message's first look-ups, in one statement.

A message that arrives alone (a group commit of one) asks three questions that almost always find nothing
(is it stored already, is a "which ticket?" question open in its chat, is a referral offered to its sender)
and, for its receipt, its chat's unsent outbox items (``helpdesk.handoff.PENDING_TO``), and then reads its
chat's open tickets (with its requester row, each ticket's receipts of the last minute:
:func:`helpdesk.usecases.threading_rules.chat_open_tickets`, and each ticket's staff-card queue, its waiting
item locked: :data:`helpdesk.usecases.cards.CARD_QUEUE`). All of it is one round trip: the four answers
as a one-row derived table, the chat's open tickets outer-joined to it (the requester row still locked FOR
KEY SHARE, inside their own sub-SELECT; PostgreSQL locks no row on the nullable side of an outer join). What
is found is kept as a batch's read-ahead answers are (:mod:`read_ahead`), and a found question or offer is
loaded by its key.
"""

from __future__ import annotations

from sqlalchemy import LABEL_STYLE_TABLENAME_PLUS_COL, select, true
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased, contains_eager

from helpdesk.db.models import PendingChoice, Referral, Requester, Ticket
from helpdesk.db.types import utcnow
from helpdesk.handoff import PENDING_TO, pending_ids
from helpdesk.messages import InboundMessage
from helpdesk.usecases.acknowledge import receipt_parameters
from helpdesk.usecases.cards import CARD_QUEUE
from helpdesk.usecases.followup_question import OPEN_QUESTION
from helpdesk.usecases.read_ahead import remember
from helpdesk.usecases.receive import STORED
from helpdesk.usecases.threading_rules import CHAT_OPEN_TICKETS_ROWS, OPEN_OFFER, keep_chat_open_tickets

# The three look-ups as their own rules ask them (receive, followup_question, threading_rules), a value each,
# and the chat's unsent outbox items as its receipt's hand-over asks them (helpdesk.handoff).
_FIRST = select(
    STORED.limit(1).scalar_subquery().label("stored"),
    OPEN_QUESTION.with_only_columns(PendingChoice.token).limit(1).scalar_subquery().label("token"),
    OPEN_OFFER.with_only_columns(Referral.id).scalar_subquery().label("offer"),
    PENDING_TO.label("pending"),
).subquery("first")
# Each open ticket's staff-card queue comes along (its waiting item locked, as ``cards`` reads it): the card
# step of the ticket the message joins needs no statement of its own.
_OPEN = (
    CHAT_OPEN_TICKETS_ROWS.add_columns(*CARD_QUEUE)
    .set_label_style(LABEL_STYLE_TABLENAME_PLUS_COL)
    .subquery("open_tickets")
)
_TICKET = aliased(Ticket, _OPEN)
_REQUESTER = aliased(Requester, _OPEN)
_LONE = (
    select(
        _FIRST.c.stored,
        _FIRST.c.token,
        _FIRST.c.offer,
        _FIRST.c.pending,
        _TICKET,
        _OPEN.c.receipts_sent,
        _OPEN.c.card_waiting,
        _OPEN.c.card_last_sent,
        _OPEN.c.card_in_flight,
    )
    .select_from(_FIRST)
    .outerjoin(_OPEN, true())
    .options(contains_eager(_TICKET.requester.of_type(_REQUESTER)))
    .order_by(_TICKET.updated_at.desc(), _TICKET.id.desc())
)


async def read_lone(session: AsyncSession, inbound: InboundMessage) -> None:
    """Ask a lone Telegram message's first look-ups now (see the module's note)."""
    user, chat = inbound.sender.telegram_user_id, inbound.sender.telegram_chat_id
    if user is None or not inbound.channel_message_id:
        return
    receipts = receipt_parameters(inbound.channel)
    parameters = {
        "channel": inbound.channel,
        "channel_id": inbound.channel_message_id,
        "user": user,
        "chat": chat,
        "recipient": str(user),
        # Its chat's unsent outbox items, for a receipt handed to the worker (helpdesk.handoff).
        "pending_channel": inbound.channel,
        "pending_recipient": str(chat),
        "now": utcnow(),  # the card queues' "waiting" and "in flight"
        **receipts,
    }
    rows = (await session.execute(_LONE, parameters)).all()
    stored, token, offer, pending = rows[0][:4]
    remember(session, "stored", (inbound.channel, inbound.channel_message_id), stored)
    remember(
        session, "open_question", (user, chat), await session.get(PendingChoice, token) if token else None
    )
    remember(session, "telegram_offer", str(user), await session.get(Referral, offer) if offer else None)
    if chat is not None:
        remember(session, "pending_outbox", (inbound.channel, str(chat)), pending_ids(pending))
        # Each open ticket's row: the ticket, its receipts of the last minute, its card queue (three values).
        found = [row[4:] for row in rows if row[4] is not None]
        keep_chat_open_tickets(session, inbound, [(ticket, sent) for ticket, sent, *_ in found], receipts)
        for ticket, _, *queue in found:
            remember(session, "card_queue", ticket.id, tuple(queue))
