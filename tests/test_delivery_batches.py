"""The delivery worker claims and marks sent in batches, against the Bot API stand-in and real databases.

The attack: a batch that locks rows in whatever order its sends finished deadlocks on PostgreSQL against a
group of messages being received (one transaction holding several tickets, taken in arrival order).
"""

from __future__ import annotations

import asyncio
import os
import random

import pytest
from row_locks import waiting_on_a_lock
from sqlalchemy import event, func, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.sender import TelegramSender
from helpdesk.db.models import Message, OutboxItem, Ticket
from helpdesk.desk import Desk
from helpdesk.email.smtp_sender import SmtpSender
from helpdesk.flood import FloodLimits
from helpdesk.messages import InboundMessage, Sender
from helpdesk.usecases.receive import ReceiveResult, receive
from helpdesk.usecases.take import take_together
from helpdesk.worker import DeliveryWorker, RetryPolicy, _Sent
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
    # The receipt's row has carried its Message-ID since it was queued: marking writes the outbox only (on
    # PostgreSQL one statement per batch of marks, its messages part given no rows).
    if engine.dialect.name == "postgresql":
        assert statements.count("UPDATE outbox") == 1 and set(statements) == {"UPDATE outbox", "WITH locked"}
    else:
        assert set(statements) == {"UPDATE outbox"}, statements
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


class Statements:
    """The statements and commits an engine runs while counting."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.sql: list[str] = []
        self.commits = 0
        self._engine = engine.sync_engine
        event.listen(self._engine, "before_cursor_execute", self._seen)
        event.listen(self._engine, "commit", self._committed)

    def close(self) -> None:
        event.remove(self._engine, "before_cursor_execute", self._seen)
        event.remove(self._engine, "commit", self._committed)

    def _seen(self, _c: object, _cur: object, statement: str, *_rest: object) -> None:
        self.sql.append(" ".join(statement.split()))

    def _committed(self, _connection: object) -> None:
        self.commits += 1


async def _claimed_receipts(desk: Desk, chats: range) -> tuple[DeliveryWorker, list[_Sent]]:
    """Telegram receipts queued, claimed, and named as if sent: what a mark is given."""
    busy_desk(desk).staff_telegram_chat_id = None
    for chat in chats:
        await receive(desk, inbound(chat, 1))
    worker = DeliveryWorker(desk.sessions, {"telegram": TelegramSender("1:x", "http://127.0.0.1:9/bot")})
    claimed = await worker._claim()
    assert len(claimed) == len(chats) and all(item.message_id for item in claimed)
    return worker, [_Sent(item, f"{item.payload['recipient']}:{9000 + item.id}") for item in claimed]


async def _marked(desk: Desk) -> tuple[set[str], list[str | None]]:
    async with desk.sessions() as session:
        statuses = set(await session.scalars(select(OutboxItem.status)))
        names = list(
            await session.scalars(
                select(Message.channel_message_id).where(Message.kind == "outbound").order_by(Message.id)
            )
        )
    return statuses, names


async def test_telegram_sends_are_marked_by_one_statement_on_postgresql(
    desk: Desk, engine: AsyncEngine
) -> None:
    """A receipt's mark was BEGIN, UPDATE outbox, UPDATE messages, COMMIT: four round trips on PostgreSQL,
    run while the next message was being received. Now one statement in autocommit; SQLite keeps its one
    transaction (no round trips there, and one fsync)."""
    worker, batch = await _claimed_receipts(desk, range(7300, 7303))
    seen = Statements(engine)
    try:
        await worker._mark_sent(batch)
    finally:
        seen.close()
    if engine.dialect.name == "postgresql":
        assert len(seen.sql) == 1 and seen.commits == 0, seen.sql
    else:
        assert [s.split(" SET")[0] for s in seen.sql] == ["UPDATE outbox", "UPDATE messages"]
        assert seen.commits == 1
    statuses, names = await _marked(desk)
    assert statuses == {"sent"} and names == [sent.sent_id for sent in batch]


async def test_the_one_statement_mark_locks_outbox_rows_then_messages_each_by_id(
    desk: Desk, engine: AsyncEngine
) -> None:
    """The lock order that keeps batched marks and grouped intake out of a deadlock, seen from outside:
    holding the first outbox row stops the mark before it locks anything else; holding the last message
    row stops it with every outbox row and the earlier messages already locked."""
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite has no row locks: its one writer takes the whole database")
    worker, batch = await _claimed_receipts(desk, range(7400, 7403))
    outbox_ids = sorted(sent.item.id for sent in batch)
    message_ids = sorted(sent.item.message_id for sent in batch if sent.item.message_id)

    async def locked(table: str, row_id: int) -> bool:
        """Whether another transaction holds ``row_id``'s lock (a NOWAIT probe, rolled back)."""
        async with engine.connect() as probe:
            try:
                await probe.execute(
                    text(f"SELECT id FROM {table} WHERE id = :id FOR UPDATE NOWAIT"), {"id": row_id}
                )
            except DBAPIError as exc:
                assert "could not obtain lock" in str(exc), exc
                return True
            finally:
                await probe.rollback()
        return False

    async def mark_while_holding(table: str, row_id: int) -> dict[str, list[bool]]:
        async with engine.connect() as holder:
            await holder.execute(text(f"SELECT id FROM {table} WHERE id = :id FOR UPDATE"), {"id": row_id})
            marking = asyncio.create_task(worker._mark_sent(batch))
            # Until the mark waits on the held row.
            assert await waiting_on_a_lock(engine, marking) and not marking.done()
            seen = {
                "outbox": [await locked("outbox", i) for i in outbox_ids],
                "messages": [await locked("messages", i) for i in message_ids],
            }
            await holder.rollback()
        await marking
        return seen

    # The first outbox row held: the mark waits there, holding nothing else.
    seen = await mark_while_holding("outbox", outbox_ids[0])
    assert seen == {"outbox": [True, False, False], "messages": [False, False, False]}, seen
    statuses, _ = await _marked(desk)
    assert statuses == {"sent"}

    # Marked again (as a retried mark would be), the last message row held: every outbox row and the
    # earlier messages are locked, in that order, before it waits.
    async with engine.begin() as connection:
        await connection.execute(
            text("UPDATE messages SET channel_message_id = NULL WHERE kind = 'outbound'")
        )
    seen = await mark_while_holding("messages", message_ids[-1])
    assert seen == {"outbox": [True, True, True], "messages": [True, True, True]}, seen
    _, names = await _marked(desk)
    assert names == [sent.sent_id for sent in batch]


async def test_a_new_card_and_its_receipt_are_delivered_without_a_transaction_on_postgresql(
    desk: Desk, engine: AsyncEngine, bot_api: TelegramApiStandIn
) -> None:
    """Each of the worker's writes is one statement: on PostgreSQL the claim, a newly posted card's id on its
    ticket and the mark run in autocommit (no BEGIN, no COMMIT); SQLite keeps a transaction for each."""
    busy_desk(desk)
    await receive(desk, inbound(7500, 1))
    sender = TelegramSender(bot_api.token, bot_api.base_url)
    worker = DeliveryWorker(desk.sessions, {"telegram": sender}, policy=FAST)
    seen = Statements(engine)
    try:
        assert await worker.deliver_due() == 2  # the receipt and the staff card
    finally:
        seen.close()
        await sender.close()
    writes = [s.split(" SET")[0] for s in seen.sql if not s.startswith("SELECT")]
    if engine.dialect.name == "postgresql":
        assert seen.commits == 0 and "UPDATE tickets" in writes, writes
    else:
        # One commit per claim, card's ticket and batch of marks (a mark's UPDATE messages rides in its own).
        assert seen.commits == len([w for w in writes if not w.startswith("UPDATE messages")]), writes
    [card] = bot_api.sent_messages(STAFF_CHAT)
    async with desk.sessions() as session:
        ticket = await session.scalar(select(Ticket))
    assert ticket is not None and ticket.telegram_card_message_id == card["message_id"]
