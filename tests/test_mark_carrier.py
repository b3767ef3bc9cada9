"""SQLite: the delivery worker's marks ride in the next intake's transaction (helpdesk/mark_carrier.py),
against the Bot API stand-in and a real database: carried by the next commit, written alone within their
bound when no intake comes, handed back when the carrying transaction rolls back, written at a graceful
stop."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from test_handoff import FAST, Marking, inbound, rows, take

from bot.sender import TelegramSender
from helpdesk.desk import Desk
from helpdesk.mark_carrier import MarkCarrier
from helpdesk.service import connect
from helpdesk.usecases.receive import ReceiveResult
from helpdesk.usecases.take import take_together
from standins.telegram_api import TelegramApiStandIn


def _sqlite_only(engine: AsyncEngine) -> None:
    if engine.dialect.name != "sqlite":
        pytest.skip("PostgreSQL marks in autocommit, holding up nobody: nothing rides")


async def _carried_once_waiting(worker: Marking) -> None:
    """Until the worker's carrier holds a mark (the send returned): loop turns, not time."""
    for _ in range(100_000):
        if worker._carrier is not None and worker._carrier._waiting:
            return
        await asyncio.sleep(0)
    raise AssertionError("no mark waited to be carried")


@asynccontextmanager
async def _running(
    desk: Desk, bot_api: TelegramApiStandIn, *, within: float, concurrency: int = 8
) -> AsyncIterator[Marking]:
    """A worker of this process serving the desk's intake, its marks riding (written alone after ``within``);
    stopped gracefully on the way out."""
    async with TelegramSender(bot_api.token, bot_api.base_url) as sender:
        worker = Marking(
            desk.sessions, {"telegram": sender}, policy=FAST, poll_interval=3600, concurrency=concurrency
        )
        connect(desk, worker)
        desk.carry_marks = worker.ride_marks(within=within)
        stop = asyncio.Event()
        running = asyncio.create_task(worker.run(stop))
        try:
            await worker.round_done.wait()
            yield worker
        finally:
            stop.set()
            await running


async def test_a_send_s_mark_rides_in_the_next_intake_s_commit(
    desk: Desk, engine: AsyncEngine, bot_api: TelegramApiStandIn
) -> None:
    _sqlite_only(engine)
    async with _running(desk, bot_api, within=3600) as worker:  # only an intake writes it here
        await take(desk, 6300, 1)
        await _carried_once_waiting(worker)
        [first] = await rows(desk)
        assert first.status == "pending" and first.locked_until is not None  # sent, its mark waiting
        await take(desk, 6301, 1)  # another chat's message: its commit carries the mark
        first_now = next(row for row in await rows(desk) if row.id == first.id)
        assert first_now.status == "sent" and first_now.attempts == 1 and first_now.locked_until is None
        assert first_now.sent_id is not None and first_now.sent_id.startswith("6300:")
        assert first.id not in worker.marked  # no transaction of the worker's own wrote it


async def test_a_mark_no_intake_carries_is_written_alone_within_its_bound(
    desk: Desk, engine: AsyncEngine, bot_api: TelegramApiStandIn
) -> None:
    _sqlite_only(engine)
    async with _running(desk, bot_api, within=0.05) as worker:
        await take(desk, 6310, 1)
        [row] = await rows(desk)
        await asyncio.wait_for(worker.marked_item(row.id), 30)  # by the worker itself, nobody carrying
    [row] = await rows(desk)
    assert row.status == "sent" and row.locked_until is None


async def test_a_burst_is_not_held_to_one_round_of_slots_per_bound(
    desk: Desk, engine: AsyncEngine, bot_api: TelegramApiStandIn
) -> None:
    """Each send keeps its slot until its mark is written. Once every slot is held by a mark waiting for an
    intake that is not coming (the burst has been taken), the worker could send nothing for ``within``: 500
    receipts of 50 chats took 26 s to go out at 8 slots and 0.5 s. Marks filling every slot are written at
    once."""
    _sqlite_only(engine)
    async with _running(desk, bot_api, within=3600, concurrency=2) as worker:
        chats = range(6330, 6336)
        [taken] = [await take_together(desk, [inbound(chat, 1) for chat in chats])]
        assert all(isinstance(t, ReceiveResult) for t in taken)
        receipts = [row.id for row in await rows(desk) if row.message_id is not None]
        assert len(receipts) == len(chats)
        await asyncio.wait_for(asyncio.gather(*(worker.marked_item(i) for i in receipts)), 30)
        assert all(bot_api.sent_messages(chat) for chat in chats)
    assert {row.status for row in await rows(desk) if row.message_id is not None} == {"sent"}


async def test_marks_filling_every_slot_are_written_at_once() -> None:
    written: list[list[str]] = []

    async def write(marks: list[str]) -> None:
        written.append(marks)

    carrier: MarkCarrier[str] = MarkCarrier(write, within=3600, full=2)
    first = asyncio.create_task(carrier.submit("item 1"))
    await asyncio.sleep(0)
    assert written == []  # one slot of two held: an intake may still carry it
    await asyncio.wait_for(asyncio.gather(first, carrier.submit("item 2")), 30)
    assert written == [["item 1", "item 2"]]
    await carrier.flush()


async def test_a_graceful_stop_writes_the_marks_waiting_to_be_carried(
    desk: Desk, engine: AsyncEngine, bot_api: TelegramApiStandIn
) -> None:
    _sqlite_only(engine)
    async with _running(desk, bot_api, within=3600) as worker:
        await take(desk, 6320, 1)
        await _carried_once_waiting(worker)
    [row] = await rows(desk)
    assert row.status == "sent" and row.locked_until is None


async def test_marks_a_rolled_back_transaction_carried_are_written_after_all() -> None:
    written: list[list[str]] = []

    async def write(marks: list[str]) -> None:
        written.append(marks)

    carrier: MarkCarrier[str] = MarkCarrier(write, within=0.01)
    waiting = asyncio.create_task(carrier.submit("item 1"))
    await asyncio.sleep(0)
    taken = carrier.take()
    assert [mark for mark, _ in taken] == ["item 1"] and carrier.take() == []
    carrier.carried(taken, committed=False)  # the intake carrying it rolled back
    await asyncio.wait_for(waiting, 30)  # written alone by its bound, not lost
    assert written == [["item 1"]]

    waiting = asyncio.create_task(carrier.submit("item 2"))
    await asyncio.sleep(0)
    taken = carrier.take()
    carrier.carried(taken, committed=True)
    await asyncio.wait_for(waiting, 30)
    assert written == [["item 1"]]  # the commit wrote it: nothing alone


async def test_a_graceful_stop_does_not_cancel_the_marks_being_written_alone() -> None:
    """A stop's flush used to cancel the timer even while it was writing the marks it had taken: their
    sends waited for ever, and so did the worker's close (a test's teardown hung on it)."""
    writing, release = asyncio.Event(), asyncio.Event()
    written: list[list[str]] = []

    async def write(marks: list[str]) -> None:
        writing.set()
        await release.wait()
        written.append(marks)

    carrier: MarkCarrier[str] = MarkCarrier(write, within=0)
    waiting = asyncio.create_task(carrier.submit("item 1"))
    await writing.wait()  # the timer took "item 1" and is writing it alone
    stopping = asyncio.create_task(carrier.flush())  # a graceful stop meanwhile: nothing left to take
    await asyncio.sleep(0)
    release.set()
    await asyncio.wait_for(asyncio.gather(waiting, stopping), 30)
    assert written == [["item 1"]]


async def test_postgresql_marks_ride_nothing(desk: Desk, engine: AsyncEngine, bot_api: Any) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite marks ride (above)")
    async with TelegramSender(bot_api.token, bot_api.base_url) as sender:
        worker = Marking(desk.sessions, {"telegram": sender}, policy=FAST, poll_interval=3600)
        assert worker.ride_marks() is None
        connect(desk, worker)
        assert desk.carry_marks is None
