"""The "which of your tickets does this continue?" conversation, declared once and kept in the database.

A requester's chat is in one of two states, and these are the only moves (each is one function here):

=========  ================================================  =========  ====================
state      event                                             next       function
=========  ================================================  =========  ====================
idle       a message whose ticket is unclear                 asked      :func:`ask`
asked      another message (within the hold bounds)          asked      :func:`hold`
asked      another message beyond the bounds                 asked      :func:`hold` → joins
                                                                        the latest ticket
asked      the requester presses a button                    idle       :func:`answer`
asked      someone else presses it                           asked      :func:`answer` → None
asked      pressed, or written to, after ``QUESTION_TTL``    idle       dropped, requester told
idle       /new with nothing else                            new        :func:`choose_new`
asked      /new with nothing else                            asked+new  :func:`choose_new`
new        a message (within ``NEW_TTL``)                    idle       :func:`hold` → opens
asked+new  a message (within ``NEW_TTL``)                    asked      :func:`hold` → opens
new        a message after ``NEW_TTL``                       idle       dropped, as if idle
=========  ================================================  =========  ====================

The question and the messages it holds are rows (``pending_choices``, ``pending_choice_messages``), so a
restart of the bot between the question and the answer loses nothing; a /new is the same row's
``new_requested_at`` (a row of its own when no question is open), so neither a restart nor a second process
between /new and the next message loses it. It is read by the read-ahead with the question and consumed in
the transaction that takes the message. The bot only renders the question and forwards the press and the
/new; it keeps no state of its own.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from sqlalchemy import and_, bindparam, delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk.db.models import PendingChoice, PendingChoiceMessage
from helpdesk.db.types import utcnow
from helpdesk.db.upsert import insert_or
from helpdesk.desk import Desk
from helpdesk.messages import InboundMessage
from helpdesk.spool import decode, encode
from helpdesk.usecases.read_ahead import answered_or_read
from helpdesk.usecases.receive import ReceiveResult, receive
from helpdesk.usecases.self_service import TicketBrief

log = logging.getLogger(__name__)

# An unanswered question is dropped after this long; pressing its button then says so.
QUESTION_TTL = timedelta(hours=24)
# Messages held per open question, and their stored size: beyond either, a flood does not wait but joins
# the most recently active ticket offered (stored at once; the held ones still follow the answer).
MAX_HELD = 20
MAX_HELD_BYTES = 64 * 1024 * 1024
# A /new waits this long for the message it announces; a message after that continues as usual.
NEW_TTL = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class Asked:
    """Nothing stored on a ticket yet: the bot must ask the question ``token`` stands for."""

    token: str
    choices: list[TicketBrief]


@dataclass(frozen=True, slots=True)
class Held:
    """The message waits with the open question ``token`` (no acknowledgement until it is answered)."""

    token: str


@dataclass(frozen=True, slots=True)
class Joins:
    """The open question holds all it may: the message goes to this ticket now."""

    reference: str


@dataclass(frozen=True, slots=True)
class Opens:
    """The requester sent /new in this chat: the message opens a ticket."""


async def hold(session: AsyncSession, inbound: InboundMessage) -> Held | Asked | Joins | Opens | None:
    """While the sender's chat has an open question: keep ``inbound`` with it. None: no question open.
    ``Opens`` when the requester sent /new there (consumed here, in the transaction taking the message).

    Safe to repeat: a message already held is not held twice (an ``Asked`` with no choices means it is
    the one the question is about; the caller offers the choices again).
    """
    question = await _open_question(session, inbound)
    if question is None:
        return None
    if question.new_requested_at is not None:
        said = question.new_requested_at
        if question.latest_reference is None:
            await _drop(session, PendingChoice.token == question.token)
        else:
            question.new_requested_at = None
        if said >= utcnow() - NEW_TTL:
            return Opens()
    if question.latest_reference is None:
        return None
    rows = list(
        await session.execute(
            select(PendingChoiceMessage.channel_message_id, PendingChoiceMessage.size)
            .where(PendingChoiceMessage.token == question.token)
            .order_by(PendingChoiceMessage.id)
        )
    )
    held_ids = [row.channel_message_id for row in rows]
    if inbound.channel_message_id in held_ids:
        first = held_ids[0] == inbound.channel_message_id
        return Asked(question.token, []) if first else Held(question.token)
    content = encode(inbound, 0.0).decode()
    if len(rows) >= MAX_HELD or sum(row.size for row in rows) + len(content) > MAX_HELD_BYTES:
        return Joins(question.latest_reference)
    session.add(_row(question.token, inbound, content))
    return Held(question.token)


async def ask(session: AsyncSession, inbound: InboundMessage, choices: list[TicketBrief]) -> Asked:
    """Open a question about ``inbound`` in its chat, holding it; expired questions go on the way."""
    await _drop(session, PendingChoice.created_at < utcnow() - QUESTION_TTL)
    sender = inbound.sender
    assert sender.telegram_user_id is not None and sender.telegram_chat_id is not None
    token = secrets.token_hex(8)
    session.add(
        PendingChoice(
            token=token,
            telegram_user_id=sender.telegram_user_id,
            telegram_chat_id=sender.telegram_chat_id,
            latest_reference=choices[0].reference,
        )
    )
    await session.flush()  # the question before its message (foreign key)
    session.add(_row(token, inbound, encode(inbound, 0.0).decode()))
    return Asked(token, choices)


async def answer(desk: Desk, token: str, user_id: int, choice: str) -> list[ReceiveResult] | None:
    """The requester chose: ``"new"`` or one of their ticket references. Receives the held messages in
    order, then closes the question. None (nothing changes) when the question is gone, expired (then it
    is dropped) or not ``user_id``'s.

    Safe to repeat after a crash or a lost connection: messages already stored are found by their
    channel id, and the question is closed only after the last one is in.
    """
    async with desk.sessions.begin() as session:
        question = await session.get(PendingChoice, token)
        if question is None or question.telegram_user_id != user_id:
            return None
        if question.created_at < utcnow() - QUESTION_TTL:
            await _drop(session, PendingChoice.token == token)
            return None
        chat_id, new_requested_at = question.telegram_chat_id, question.new_requested_at
        contents = list(
            await session.scalars(
                select(PendingChoiceMessage.content)
                .where(PendingChoiceMessage.token == token)
                .order_by(PendingChoiceMessage.id)
            )
        )
    held = [decode(content.encode())[0] for content in contents]
    results: list[ReceiveResult] = []
    if held and choice == "new":
        # The first message opens the ticket; the rest continue that one.
        first = await receive(desk, replace(held.pop(0), force_new=True, continues=None))
        results.append(first)
        choice = first.reference
    for inbound in held:
        results.append(await receive(desk, replace(inbound, force_new=False, continues=choice)))
    async with desk.sessions.begin() as session:
        await _drop(session, PendingChoice.token == token)
        if new_requested_at is not None:  # a /new sent while the question was open still stands
            await _say_new(session, user_id, chat_id, new_requested_at)
    return results


async def choose_new(desk: Desk, user_id: int, chat_id: int) -> None:
    """The requester sent /new alone: their next message in this chat opens a ticket (within ``NEW_TTL``),
    whichever process takes it and whenever it restarted meanwhile."""
    async with desk.sessions.begin() as session:
        mine = and_(PendingChoice.telegram_user_id == user_id, PendingChoice.telegram_chat_id == chat_id)
        await _drop(session, and_(mine, PendingChoice.created_at < utcnow() - QUESTION_TTL))
        await _say_new(session, user_id, chat_id, utcnow())


async def _say_new(session: AsyncSession, user_id: int, chat_id: int, at: datetime) -> None:
    """The chat's /new, on its open question's row or on a row of its own: one upsert, so another process
    writing the chat's row at the same moment is waited for and its row kept, never a unique clash."""
    statement = insert_or(session, PendingChoice).values(
        token=secrets.token_hex(8),
        telegram_user_id=user_id,
        telegram_chat_id=chat_id,
        latest_reference=None,
        created_at=at,
        new_requested_at=at,
    )
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=[PendingChoice.telegram_user_id, PendingChoice.telegram_chat_id],
            set_={"new_requested_at": statement.excluded.new_requested_at},
        )
    )


async def forget_questions(session: AsyncSession, telegram_user_ids: set[int]) -> int:
    """Drop the open questions of these Telegram users (a person forgotten); returns the messages dropped."""
    if not telegram_user_ids:
        return 0
    mine = PendingChoice.telegram_user_id.in_(telegram_user_ids)
    dropped = await session.scalar(
        select(func.count()).where(PendingChoiceMessage.token.in_(select(PendingChoice.token).where(mine)))
    )
    await _drop(session, mine)
    return dropped or 0


OPEN_QUESTION = select(PendingChoice).where(
    PendingChoice.telegram_user_id == bindparam("user"), PendingChoice.telegram_chat_id == bindparam("chat")
)


async def _open_question(session: AsyncSession, inbound: InboundMessage) -> PendingChoice | None:
    sender = inbound.sender
    user, chat = sender.telegram_user_id, sender.telegram_chat_id
    question = await answered_or_read(
        session, "open_question", (user, chat), OPEN_QUESTION, {"user": user, "chat": chat}
    )
    if question is not None and question.created_at < utcnow() - QUESTION_TTL:
        dropped = await session.scalar(
            select(func.count()).where(PendingChoiceMessage.token == question.token)
        )
        log.info("question %s expired unanswered; %s held message(s) dropped", question.token, dropped)
        await _drop(session, PendingChoice.token == question.token)
        return None
    return question


async def _drop(session: AsyncSession, which: object) -> None:
    tokens = select(PendingChoice.token).where(which)  # type: ignore[arg-type]
    await session.execute(delete(PendingChoiceMessage).where(PendingChoiceMessage.token.in_(tokens)))
    await session.execute(delete(PendingChoice).where(PendingChoice.token.in_(tokens)))


def _row(token: str, inbound: InboundMessage, content: str) -> PendingChoiceMessage:
    return PendingChoiceMessage(
        token=token, channel_message_id=inbound.channel_message_id, size=len(content), content=content
    )
