"""A receipt handed by the Telegram intake straight to the delivery worker of its process
(helpdesk/handoff.py), against the Bot API stand-in and real databases: sent without a claim, never lost,
never sent twice, never ahead of an older item for the same chat, retried the ordinary way when its send
fails."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from sqlalchemy import event, select
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.sender import TelegramSender
from helpdesk.db.models import OutboxItem
from helpdesk.delivery import ChannelSender
from helpdesk.desk import Desk
from helpdesk.flood import FloodLimits
from helpdesk.messages import InboundMessage, OutboundMessage, Sender
from helpdesk.service import connect
from helpdesk.usecases.receive import ReceiveResult
from helpdesk.usecases.reply import reply
from helpdesk.usecases.take import take_together
from helpdesk.worker import DeliveryWorker, RetryPolicy, _Sent
from standins.telegram_api import TelegramApiStandIn

FAST = RetryPolicy(max_attempts=4, base_delay=0.05, max_delay=0.2, lease=30)


def inbound(chat: int, n: int) -> InboundMessage:
    sender = Sender(name=f"Chat {chat}", telegram_user_id=chat, telegram_chat_id=chat, language="en")
    return InboundMessage("telegram", f"{chat}:{100_000 + n}", sender, f"Message {n}: protected areas")


async def take(desk: Desk, chat: int, n: int) -> ReceiveResult:
    [taken] = await take_together(desk, [inbound(chat, n)])
    assert isinstance(taken, ReceiveResult), taken
    return taken


async def rows(desk: Desk) -> list[OutboxItem]:
    async with desk.sessions() as session:
        return list(await session.scalars(select(OutboxItem).order_by(OutboxItem.id)))


def receipts_to(api: TelegramApiStandIn, chat: int) -> list[dict[str, Any]]:
    return api.sent_messages(chat)


class Marking(DeliveryWorker):
    """Says when a batch of sends has been marked, and counts its claims."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.marked: list[int] = []
        self.mark = asyncio.Event()
        self.claims = 0
        self.round_done = asyncio.Event()

    async def deliver_due(self) -> int:
        claimed = await super().deliver_due()
        self.round_done.set()
        return claimed

    async def _claim(self) -> Any:
        self.claims += 1
        return await super()._claim()

    async def _mark_sent(self, batch: list[_Sent]) -> list[None]:
        result = await super()._mark_sent(batch)
        self.marked.extend(sent.item.id for sent in batch)
        self.mark.set()
        return result

    async def marked_item(self, item_id: int) -> None:
        while item_id not in self.marked:
            self.mark.clear()
            await self.mark.wait()


class Gate:
    """A sender that holds every send until opened, and says when one is waiting."""

    def __init__(self, inner: ChannelSender) -> None:
        self.inner = inner
        self.open = asyncio.Event()
        self.waiting = asyncio.Event()
        self.started: list[str] = []

    async def send(self, message: OutboundMessage) -> str | None:
        self.started.append(message.text)
        self.waiting.set()
        await self.open.wait()
        return await self.inner.send(message)


class Statements:
    def __init__(self, engine: AsyncEngine) -> None:
        self.sql: list[str] = []
        self._engine = engine
        event.listen(engine.sync_engine, "before_cursor_execute", self._seen)

    def _seen(self, _conn: object, _cursor: object, statement: str, *_rest: object) -> None:
        self.sql.append(" ".join(statement.split()))

    def close(self) -> None:
        event.remove(self._engine.sync_engine, "before_cursor_execute", self._seen)

    def claims(self) -> list[str]:
        # The claim is the one statement that ranks due items per recipient.
        return [s for s in self.sql if s.startswith("UPDATE outbox") and "row_number" in s.lower()]


async def test_a_handed_receipt_is_sent_without_a_claim(
    desk: Desk, engine: AsyncEngine, bot_api: TelegramApiStandIn
) -> None:
    async with TelegramSender(bot_api.token, bot_api.base_url) as sender:
        worker = Marking(desk.sessions, {"telegram": sender}, policy=FAST, poll_interval=3600)
        connect(desk, worker)
        stop = asyncio.Event()
        running = asyncio.create_task(worker.run(stop))
        await worker.round_done.wait()  # the run loop's first (empty) claim is not this receipt's
        first_claims = worker.claims
        seen = Statements(engine)
        try:
            taken = await take(desk, 6100, 1)
            [row] = await rows(desk)
            await worker.marked_item(row.id)
        finally:
            seen.close()
            stop.set()
            await running
    [receipt] = receipts_to(bot_api, 6100)
    assert taken.reference in receipt["text"]
    assert seen.claims() == [] and worker.claims == first_claims, seen.claims()
    # Written leased, its id returned by the INSERT itself (no second round trip for it).
    [insert] = [s for s in seen.sql if s.startswith("INSERT INTO outbox")]
    assert "RETURNING" in insert and "locked_until" in insert and "claim_token" in insert
    [row] = await rows(desk)
    assert row.status == "sent" and row.attempts == 1 and row.sent_id == f"6100:{receipt['message_id']}"
    assert row.locked_until is None


async def test_a_desk_without_a_worker_writes_its_receipt_unleased(desk: Desk) -> None:
    await take(desk, 6150, 1)
    [row] = await rows(desk)
    assert row.status == "pending" and row.locked_until is None and row.claim_token is None


async def test_a_crash_after_the_commit_loses_nothing_once_the_lease_runs_out(
    desk: Desk, bot_api: TelegramApiStandIn
) -> None:
    """The process dies after the intake committed and before its worker sent the receipt: the row is
    leased to a worker that is gone, and the next one to claim after the lease takes it, once."""
    short = RetryPolicy(max_attempts=4, base_delay=0.05, lease=2.0)
    async with TelegramSender(bot_api.token, bot_api.base_url) as sender:

        class Dies(DeliveryWorker):
            def _settle(self, entry: Any, committed: bool) -> None:
                # The process is gone after the commit: the worker forgets the item and never sends it.
                super()._settle(entry, committed=False)

        connect(desk, Dies(desk.sessions, {"telegram": sender}, policy=short))
        committed_at = time.monotonic()
        await take(desk, 6200, 1)
        [row] = await rows(desk)
        assert row.locked_until is not None and row.claim_token is not None

        survivor = DeliveryWorker(desk.sessions, {"telegram": sender}, policy=short)
        assert await survivor.deliver_due() == 0  # the lease keeps it off
        for _ in range(1200):  # a bounded wait for the lease: up to a minute on a loaded machine
            if delivered := await survivor.deliver_due():
                break
            await asyncio.sleep(0.05)
        assert delivered == 1 and time.monotonic() - committed_at >= 2.0
        assert await survivor.deliver_due() == 0
    assert len(receipts_to(bot_api, 6200)) == 1
    [row] = await rows(desk)
    assert row.status == "sent"


async def test_a_stop_before_the_send_releases_the_lease_for_the_next_start(
    desk: Desk, bot_api: TelegramApiStandIn
) -> None:
    async with TelegramSender(bot_api.token, bot_api.base_url) as sender:
        stopping = DeliveryWorker(desk.sessions, {"telegram": sender}, policy=FAST)
        connect(desk, stopping)
        await take(desk, 6300, 1)
        # The hand-over is done; the worker stops before its drain has run.
        await stopping.close()
        [row] = await rows(desk)
        assert row.status == "pending" and row.locked_until is None and row.claim_token is None
        assert receipts_to(bot_api, 6300) == []
        # A stopped worker is handed nothing: the next receipt is written for the claim.
        await take(desk, 6301, 1)
        assert (await rows(desk))[1].locked_until is None

        restarted = DeliveryWorker(desk.sessions, {"telegram": sender}, policy=FAST)
        assert await restarted.deliver_due() == 2  # at once, not after the 30 s lease
        assert await restarted.deliver_due() == 0
    assert len(receipts_to(bot_api, 6300)) == 1 and len(receipts_to(bot_api, 6301)) == 1


async def test_the_claim_never_takes_a_handed_receipt_so_it_is_sent_once(
    desk: Desk, bot_api: TelegramApiStandIn
) -> None:
    async with TelegramSender(bot_api.token, bot_api.base_url) as real:
        gate = Gate(real)
        worker = Marking(desk.sessions, {"telegram": gate}, policy=FAST)
        connect(desk, worker)
        other = DeliveryWorker(desk.sessions, {"telegram": real}, policy=FAST)
        await take(desk, 6400, 1)
        await gate.waiting.wait()  # the handed receipt is being sent
        # Claims running meanwhile, this worker's own and another process's, find nothing to take.
        # (Bounded: a claim that took it would wait behind the gate for ever.)
        claims = asyncio.gather(worker.deliver_due(), other.deliver_due())
        assert await asyncio.wait_for(claims, 30) == [0, 0]
        gate.open.set()
        [row] = await rows(desk)
        await worker.marked_item(row.id)
        assert await other.deliver_due() == 0
    assert len(receipts_to(bot_api, 6400)) == 1
    assert len(gate.started) == 1


async def test_a_receipt_goes_behind_an_older_item_for_its_chat(
    desk: Desk, bot_api: TelegramApiStandIn
) -> None:
    """The rule (``DeliveryWorker.hand_off``): handed only when every unsent item for that chat the intake
    read is held by this worker; then it waits behind them. An item waiting for a claim keeps the receipt
    for the claim, behind it."""
    desk.limits = FloodLimits(receipts_per_minute=100)
    async with TelegramSender(bot_api.token, bot_api.base_url) as real:
        gate = Gate(real)
        worker = Marking(desk.sessions, {"telegram": gate}, policy=FAST)
        connect(desk, worker)
        first = await take(desk, 6500, 1)  # handed: being sent, held at the gate
        await gate.waiting.wait()
        [held] = await rows(desk)
        # A staff reply waits for a claim: the next receipt may not be handed ahead of it.
        await reply(desk, first.reference, "Staff answer one", actor="cli")
        await take(desk, 6500, 2)
        _, waiting, unhanded = await rows(desk)
        assert waiting.locked_until is None and unhanded.locked_until is None
        assert worker.hand_off("telegram", "6500", frozenset({held.id, waiting.id})) is None
        # Everything unsent for the chat is held by the worker: handed, and queued behind it.
        assert worker.hand_off("telegram", "6500", frozenset({held.id})) is not None
        gate.open.set()
        await worker.marked_item(held.id)
        assert await worker.deliver_due() == 2
        # Only the marked item left: the next receipt is handed again.
        assert worker.hand_off("telegram", "6500", frozenset({held.id})) is not None
        gate.open.clear()
        gate.waiting.clear()
        await reply(desk, first.reference, "Staff answer two", actor="cli")
        claimed = asyncio.create_task(worker.deliver_due())
        await gate.waiting.wait()  # the claimed reply is being sent
        await take(desk, 6500, 3)
        last = (await rows(desk))[-1]
        assert last.locked_until is not None  # handed, behind the reply the worker holds
        gate.open.set()
        assert await claimed == 1
        await worker.marked_item(last.id)
    texts = [m["text"] for m in receipts_to(bot_api, 6500)]
    assert len(texts) == 5
    assert "Staff answer one" in texts[1] and "Staff answer two" in texts[3], texts
    assert [row.status for row in await rows(desk)] == ["sent"] * 5


async def test_a_failed_handed_send_is_retried_by_the_claim(desk: Desk, bot_api: TelegramApiStandIn) -> None:
    bot_api.fail_next("sendMessage", 500, "Internal Server Error")
    async with TelegramSender(bot_api.token, bot_api.base_url) as sender:
        worker = Marking(desk.sessions, {"telegram": sender}, policy=FAST, poll_interval=0.1)
        connect(desk, worker)
        stop = asyncio.Event()
        running = asyncio.create_task(worker.run(stop))
        try:
            await take(desk, 6600, 1)
            [row] = await rows(desk)
            await worker.marked_item(row.id)
        finally:
            stop.set()
            await running
    assert len(bot_api.calls_to("sendMessage")) == 2 and len(receipts_to(bot_api, 6600)) == 1
    [row] = await rows(desk)
    assert row.status == "sent" and row.attempts == 2 and row.last_error is None


async def test_a_group_s_handed_receipts_are_one_insert_and_each_knows_its_id(
    desk: Desk, engine: AsyncEngine, bot_api: TelegramApiStandIn
) -> None:
    """A group commit's receipts, all handed, still go to the database in one INSERT (on SQLite too, where
    asking for RETURNING rows in the order of their VALUES inserted them one by one)."""
    chats = range(6700, 6706)
    async with TelegramSender(bot_api.token, bot_api.base_url) as sender:
        worker = Marking(desk.sessions, {"telegram": sender}, policy=FAST)
        connect(desk, worker)
        seen = Statements(engine)
        try:
            taken = await take_together(desk, [inbound(chat, 1) for chat in chats])
        finally:
            seen.close()
        assert all(isinstance(t, ReceiveResult) for t in taken)
        inserted = await rows(desk)
        assert all(row.locked_until is not None for row in inserted)
        for row in inserted:
            await worker.marked_item(row.id)
    assert len([s for s in seen.sql if s.startswith("INSERT INTO outbox")]) == 1, seen.sql
    assert "FROM outbox" in " ".join(s for s in seen.sql if s.startswith("SELECT"))  # the chats' unsent items
    for row in await rows(desk):
        [receipt] = receipts_to(bot_api, int(row.payload["recipient"]))
        assert row.status == "sent" and row.sent_id == f"{row.payload['recipient']}:{receipt['message_id']}"


async def test_a_receipt_committed_while_the_worker_stops_is_released_not_sent(
    desk: Desk, bot_api: TelegramApiStandIn
) -> None:
    """A stop that comes while the intake's transaction is still open: the worker lets go of the item it was
    handed, and once the transaction commits its lease is released, so the next start sends it at once."""
    async with TelegramSender(bot_api.token, bot_api.base_url) as sender:

        class StopsMidTransaction(DeliveryWorker):
            closing: asyncio.Future[None] | None = None

            def _hold(self, item: Any, token: str, **kwargs: Any) -> Any:
                entry = super()._hold(item, token, **kwargs)
                if not kwargs.get("ready"):
                    self.closing = asyncio.ensure_future(self.close())  # runs before the commit
                return entry

        stopping = StopsMidTransaction(desk.sessions, {"telegram": sender}, policy=FAST)
        connect(desk, stopping)
        await take(desk, 6800, 1)
        assert stopping.closing is not None
        await stopping.closing
        await asyncio.gather(*stopping._releases)
        [row] = await rows(desk)
        assert row.status == "pending" and row.locked_until is None and row.claim_token is None
        assert receipts_to(bot_api, 6800) == []
        restarted = DeliveryWorker(desk.sessions, {"telegram": sender}, policy=FAST)
        assert await restarted.deliver_due() == 1
    assert len(receipts_to(bot_api, 6800)) == 1
