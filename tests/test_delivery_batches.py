"""The delivery worker claims and marks sent in batches, against the Bot API stand-in and real databases.

The attack: a batch that locks rows in whatever order its sends finished deadlocks on PostgreSQL against a
group of messages being received (one transaction holding several tickets, taken in arrival order).
"""

from __future__ import annotations

import asyncio
import os
import random

from sqlalchemy import event, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.sender import TelegramSender
from helpdesk.db.models import Message, OutboxItem, Ticket
from helpdesk.desk import Desk
from helpdesk.email.smtp_sender import SmtpSender
from helpdesk.flood import FloodLimits
from helpdesk.messages import InboundMessage, Sender
from helpdesk.usecases.receive import ReceiveResult, receive
from helpdesk.usecases.take import take_together
from helpdesk.worker import DeliveryWorker, RetryPolicy
from standins.smtp_server import SmtpStandIn
from standins.telegram_api import TelegramApiStandIn

STAFF_CHAT = -1004242
FAST = RetryPolicy(max_attempts=3, base_delay=0.05, max_delay=0.2, lease=30)
ROUNDS = int(os.environ.get("HELPDESK_TEST_DEADLOCK_ROUNDS", "25"))


def inbound(chat: int, n: int) -> InboundMessage:
    sender = Sender(name=f"Chat {chat}", telegram_user_id=chat, telegram_chat_id=chat, language="en")
    # Message ids far above those the stand-in gives our own receipts in the same chat.
    return InboundMessage("telegram", f"{chat}:{100_000 + n}", sender, f"Message {n}: protected areas")


def busy_desk(desk: Desk) -> Desk:
    desk.staff_telegram_chat_id = STAFF_CHAT
    # Every message gets a receipt and every ticket a fresh card at once: the most rows to lock.
    desk.limits = FloodLimits(receipts_per_minute=10_000, card_refresh_seconds=0)
    return desk


class Commits:
    def __init__(self, engine: AsyncEngine) -> None:
        self.count = 0
        event.listen(engine.sync_engine, "commit", self._count)

    def _count(self, _connection: object) -> None:
        self.count += 1


async def test_batched_delivery_and_group_receive_never_deadlock(
    desk: Desk, bot_api: TelegramApiStandIn
) -> None:
    busy_desk(desk)
    sender = TelegramSender(bot_api.token, bot_api.base_url)
    workers = [
        DeliveryWorker(desk.sessions, {"telegram": sender}, policy=FAST, concurrency=8) for _ in range(2)
    ]
    chats = [7100 + n for n in range(8)]
    for chat in chats:
        await receive(desk, inbound(chat, 1))
    shuffle = random.Random(12)
    try:
        for n in range(2, ROUNDS + 2):
            # A group of follow-ups (every ticket updated, in a different order each time) while two
            # workers send and mark the receipts and cards of the previous rounds.
            group = [inbound(chat, n) for chat in shuffle.sample(chats, len(chats))]
            outcomes, *_ = await asyncio.gather(
                take_together(desk, group), *(worker.deliver_due() for worker in workers)
            )
            assert all(isinstance(o, ReceiveResult) and not o.duplicate for o in outcomes), outcomes
        while sum(await asyncio.gather(*(worker.deliver_due() for worker in workers))):
            pass
    finally:
        await sender.close()

    async with desk.sessions() as session:
        stored = await session.scalar(
            select(func.count()).select_from(Message).where(Message.kind == "inbound")
        )
        by_status = dict(
            (await session.execute(select(OutboxItem.status, func.count()).group_by(OutboxItem.status))).all()
        )
        cards = list(await session.scalars(select(Ticket.telegram_card_message_id)))
    assert stored == len(chats) * (ROUNDS + 1)
    assert by_status == {"sent": by_status.get("sent", 0)} and by_status["sent"] > 0, by_status
    assert all(card is not None for card in cards)


async def test_one_batch_claims_and_marks_sent_in_few_commits(
    desk: Desk, engine: AsyncEngine, bot_api: TelegramApiStandIn
) -> None:
    busy_desk(desk).staff_telegram_chat_id = None
    for chat in range(7200, 7212):
        await receive(desk, inbound(chat, 1))
    sender = TelegramSender(bot_api.token, bot_api.base_url)
    worker = DeliveryWorker(desk.sessions, {"telegram": sender}, policy=FAST, concurrency=12)
    commits = Commits(engine)
    try:
        assert await worker.deliver_due() == 12
    finally:
        await sender.close()
    # One claim, and the marks of sends that finished together share commits: far fewer than one each.
    assert commits.count <= 1 + 6, commits.count
    async with desk.sessions() as session:
        items = list(await session.scalars(select(OutboxItem)))
        acks = list(
            await session.scalars(select(Message.channel_message_id).where(Message.kind == "outbound"))
        )
    assert {item.status for item in items} == {"sent"} and all(item.attempts == 1 for item in items)
    assert all(item.sent_id and item.locked_until is None for item in items)
    assert len(acks) == 12 and all(acks)  # Telegram ids stored: a reply to our receipt finds its ticket


async def test_mail_sent_under_its_queued_message_id_is_marked_by_one_statement(
    desk: Desk, engine: AsyncEngine, smtp: SmtpStandIn
) -> None:
    for n in range(3):
        sender = Sender(name=f"Aliya {n}", email=f"aliya.{n}@eco.gov.kz")
        await receive(desk, InboundMessage("email", f"<mark.{n}@eco.gov.kz>", sender, "Wetland inventory"))
    statements: list[str] = []

    def seen(_c: object, _cur: object, statement: str, *_rest: object) -> None:
        statements.append(" ".join(statement.split()[:2]))

    mail = SmtpSender(smtp.host, smtp.port, tls=False, mail_from=desk.mail_from or "", timeout=5)
    worker = DeliveryWorker(desk.sessions, {"email": mail}, policy=FAST)
    event.listen(engine.sync_engine, "before_cursor_execute", seen)
    try:
        assert await worker.deliver_due() == 3
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", seen)
        await mail.close()
    # The receipt's row has carried its Message-ID since it was queued: marking writes the outbox only.
    assert "UPDATE messages" not in statements and "UPDATE outbox" in statements, statements
    captured = {str(c.message["Message-ID"]) for c in await smtp.wait_for_messages(3)}
    async with desk.sessions() as session:
        rows = set(
            await session.execute(
                select(OutboxItem.sent_id, Message.channel_message_id).join(
                    Message, Message.id == OutboxItem.message_id
                )
            )
        )
    assert {sent for sent, _ in rows} == captured and all(sent == stored for sent, stored in rows)
