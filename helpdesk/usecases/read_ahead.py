"""What every message of a batch looks up first, read for the whole batch in one statement each.

Mail is received up to 50 messages in one transaction (``receive_batch``), and each message first asks the
same three questions: is its channel id stored already (the duplicate check), which requester row is its
sender, how many automatic mails did that sender get this hour. A Telegram group commit asks the first two
the same way, and two of its own: the "which ticket?" question open in the sender's chat, the referral
offered to the sender (its requesters by Telegram user id), and for their receipts each chat's unsent
outbox items (:mod:`helpdesk.handoff`). ``read_ahead`` asks them for the whole
batch before the first message is received, one statement each, and keeps the answers in the
transaction's memo.

Each answer is used once, by the first message that asks for its key; a later message asking for the same
key reads the database as before, because an earlier one may have changed the answer (stored that id,
made that requester, counted a receipt to that address). Only a message asking for a key writes rows
under it, so an answer nobody has asked for yet is still what the database would say, savepoints and
their rollbacks included. A key that was not read ahead is read from the database as before.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Final

from sqlalchemy import Executable, bindparam, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk import handoff
from helpdesk.db.models import AutoReply, Message, PendingChoice, Referral, Requester
from helpdesk.db.transaction_memo import transaction_values
from helpdesk.messages import InboundMessage

_KEY = "read_ahead"
NOT_READ: Final = object()
# How intake reads a sender's requester row: FOR KEY SHARE on PostgreSQL (intakes never wait on each other;
# forget, locking the row FOR UPDATE first, waits for them), nothing on SQLite. See usecases/requesters.py.
SHARING: Final[dict[str, Any]] = {"read": True, "key_share": True}

# Built once, bound per call: building a statement and its cache key costs more CPU than running it.
_STORED = select(Message.channel, Message.channel_message_id, Message.ticket_id).where(
    Message.channel_message_id.in_(bindparam("channel_ids", expanding=True))
)
_REQUESTERS_BY_ADDRESS = (
    select(Requester)
    .where(func.lower(Requester.email).in_(bindparam("addresses", expanding=True)))
    .order_by(Requester.id.desc())
    .with_for_update(**SHARING)
)
_AUTO_REPLIES = (
    select(AutoReply.recipient, func.count(AutoReply.id))
    .where(
        AutoReply.recipient.in_(bindparam("addresses", expanding=True)),
        AutoReply.created_at >= bindparam("since"),
    )
    .group_by(AutoReply.recipient)
)
_REQUESTERS_BY_USER = (
    select(Requester)
    .where(Requester.telegram_user_id.in_(bindparam("users", expanding=True)))
    .with_for_update(**SHARING)
)
_QUESTIONS_BY_USER = select(PendingChoice).where(
    PendingChoice.telegram_user_id.in_(bindparam("users", expanding=True))
)
_OFFERS = (
    select(Referral)
    .where(
        Referral.channel == "telegram",
        Referral.recipient.in_(bindparam("recipients", expanding=True)),
        Referral.state == "offered",
    )
    .order_by(Referral.id)
)


async def read_ahead(
    session: AsyncSession,
    inbounds: Sequence[InboundMessage],
    *,
    auto_replies_since: datetime,
    hand_off: bool = False,
) -> None:
    """Answer the batch's first look-ups now (see the module's note); with ``hand_off`` (a worker in this
    process may be handed the receipts) a Telegram group's unsent outbox items per chat too."""
    answers: dict[tuple[str, Any], Any] = {}
    ids = {(m.channel, m.channel_message_id) for m in inbounds if m.channel_message_id}
    if ids:
        answers.update(dict.fromkeys((("stored", key) for key in ids), None))
        rows = await session.execute(_STORED, {"channel_ids": list({channel_id for _, channel_id in ids})})
        for channel, channel_id, ticket_id in rows:
            if (channel, channel_id) in ids:
                answers[("stored", (channel, channel_id))] = ticket_id
    telegram_users = {m.sender.telegram_user_id for m in inbounds if m.sender.telegram_user_id is not None}
    if telegram_users:
        await _read_telegram(session, inbounds, telegram_users, answers, hand_off)
    emails = {
        m.sender.email.lower() for m in inbounds if m.sender.email and m.sender.telegram_user_id is None
    }
    if emails:
        answers.update(dict.fromkeys((("requester", email) for email in emails), None))
        requesters = await session.scalars(_REQUESTERS_BY_ADDRESS, {"addresses": list(emails)})
        for requester in requesters:  # newest first, so the oldest row of an address is the one kept
            answers[("requester", (requester.email or "").lower())] = requester
        answers.update(dict.fromkeys((("auto_replies", email) for email in emails), 0))
        counts = await session.execute(
            _AUTO_REPLIES, {"addresses": list(emails), "since": auto_replies_since}
        )
        for recipient, count in counts:
            answers[("auto_replies", recipient)] = count
    transaction_values(session)[_KEY] = answers


async def _read_telegram(
    session: AsyncSession,
    inbounds: Sequence[InboundMessage],
    users: set[int],
    answers: dict[tuple[str, Any], Any],
    hand_off: bool,
) -> None:
    """A Telegram group's look-ups: each sender's requester row, the "which ticket?" question open in their
    chat, and the referral offered to them (a message from the expert answers it)."""
    answers.update(dict.fromkeys((("telegram_requester", user) for user in users), None))
    for requester in await session.scalars(_REQUESTERS_BY_USER, {"users": list(users)}):
        answers[("telegram_requester", requester.telegram_user_id)] = requester
    chats = {(m.sender.telegram_user_id, m.sender.telegram_chat_id) for m in inbounds}
    answers.update(dict.fromkeys((("open_question", chat) for chat in chats), None))
    for question in await session.scalars(_QUESTIONS_BY_USER, {"users": list(users)}):
        key = ("open_question", (question.telegram_user_id, question.telegram_chat_id))
        if key in answers:
            answers[key] = question
    if hand_off:
        await _read_pending(session, {m.sender.telegram_chat_id for m in inbounds} - {None}, answers)
    answers.update(dict.fromkeys((("telegram_offer", str(user)) for user in users), None))
    offers = await session.scalars(_OFFERS, {"recipients": [str(user) for user in users]})
    for referral in offers.unique():  # oldest first, so the newest offer to each expert is the one kept
        answers[("telegram_offer", referral.recipient)] = referral


async def _read_pending(
    session: AsyncSession, chats: set[int | None], answers: dict[tuple[str, Any], Any]
) -> None:
    """Each chat's unsent outbox items, for a receipt handed to the worker (:mod:`helpdesk.handoff`)."""
    found: dict[str, list[int]] = {str(chat): [] for chat in chats}
    parameters = {"pending_channel": "telegram", "pending_recipients": list(found)}
    for recipient, item_id in await session.execute(handoff.PENDING_TO_ANY, parameters):
        found[recipient].append(item_id)
    for recipient, ids in found.items():
        answers[("pending_outbox", ("telegram", recipient))] = handoff.pending_ids(ids)


def remember(session: AsyncSession, question: str, key: Any, answer: Any) -> None:
    """Keep an answer another read of this transaction brought along (the chat's open tickets carry their
    requester), to be used once like one read ahead; only a read made for the same message may do so, before
    that message writes anything under the key."""
    transaction_values(session).setdefault(_KEY, {})[(question, key)] = answer


def forget_answers(session: AsyncSession) -> None:
    """Drop every answer kept (objects a rolled-back member loaded may no longer be in the session)."""
    transaction_values(session).pop(_KEY, None)


def answered(session: AsyncSession, question: str, key: Any) -> Any:
    """The answer read ahead for ``key`` (``NOT_READ`` when there is none, or it was used already)."""
    answers: dict[tuple[str, Any], Any] | None = transaction_values(session).get(_KEY)
    if answers is None:
        return NOT_READ
    return answers.pop((question, key), NOT_READ)


async def answered_or_read(
    session: AsyncSession, question: str, key: Any, statement: Executable, params: Mapping[str, Any]
) -> Any:
    """The answer read ahead for ``key``, else the first column of ``statement``'s first row with
    ``params`` bound (a statement built once, next to the rule it serves)."""
    answer = answered(session, question, key)
    return await session.scalar(statement, params) if answer is NOT_READ else answer
