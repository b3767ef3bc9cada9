"""Group commit of Telegram intake: messages of different chats share one commit, each is answered only
after its own is committed, a failed member is retried alone, a failed commit loses nothing."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, select
from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncEngine
from telegram_harness import Harness, open_harness

from helpdesk.db.models import Message, Ticket
from helpdesk.desk import Desk
from helpdesk.messages import InboundMessage, Sender
from helpdesk.safe_intake import SafeIntake
from helpdesk.spool import InboundSpool, Spooled
from helpdesk.usecases.receive import ReceiveResult

CHATS = [8300 + n for n in range(6)]


def inbound(chat: int, n: int, text: str = "We need help with our protected area plan") -> InboundMessage:
    sender = Sender(name=f"Chat {chat}", telegram_user_id=chat, telegram_chat_id=chat, language="en")
    return InboundMessage("telegram", f"{chat}:{n}", sender, f"{text} ({n})")


class CommitLog:
    """The engine's commits (SQLAlchemy's commit event); ``fail`` makes the next ones raise instead."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.count = 0
        self.failed = 0
        self.fail = 0  # how many commits to fail from now on
        event.listen(engine.sync_engine, "commit", self._on_commit)

    def _on_commit(self, _connection: Any) -> None:
        if self.fail:
            self.fail -= 1
            self.failed += 1
            raise ConnectionResetError("connection lost at commit")  # what a dying database looks like
        self.count += 1


@pytest.fixture
async def intake(desk: Desk, tmp_path: Path) -> AsyncIterator[SafeIntake]:
    taker = SafeIntake(desk, InboundSpool(tmp_path / "spool"), sender=None, retry_delays=(0.05, 0.05))
    await taker.spool.holds_chat(0)  # the spool's first scan, so that every take below starts together
    yield taker


async def stored(desk: Desk) -> list[str]:
    async with desk.sessions() as session:
        return list(
            await session.scalars(
                select(Message.channel_message_id).where(Message.kind == "inbound").order_by(Message.id)
            )
        )


async def test_several_chats_at_once_share_one_commit(
    desk: Desk, engine: AsyncEngine, intake: SafeIntake
) -> None:
    commits = CommitLog(engine)
    outcomes = await asyncio.gather(*(intake.take(inbound(chat, 1)) for chat in CHATS))
    assert all(isinstance(o, ReceiveResult) and o.created for o in outcomes), outcomes
    assert commits.count == 1
    assert sorted(await stored(desk)) == sorted(f"{chat}:1" for chat in CHATS)
    assert len({o.reference for o in outcomes if isinstance(o, ReceiveResult)}) == len(CHATS)


async def test_a_failed_commit_answers_nobody_and_every_message_is_retried(
    desk: Desk, engine: AsyncEngine, intake: SafeIntake
) -> None:
    commits = CommitLog(engine)
    commits.fail = 1
    outcomes = await asyncio.gather(*(intake.take(inbound(chat, 1)) for chat in CHATS))
    # The group's commit failed: no caller was answered from it; each message was taken again, alone.
    assert commits.failed == 1 and commits.count == len(CHATS)
    assert all(isinstance(o, ReceiveResult) and o.created for o in outcomes), outcomes
    assert sorted(await stored(desk)) == sorted(f"{chat}:1" for chat in CHATS)


async def test_a_database_failing_every_commit_spools_the_group_and_loses_nothing(
    desk: Desk, engine: AsyncEngine, intake: SafeIntake
) -> None:
    commits = CommitLog(engine)
    commits.fail = 1_000
    outcomes = await asyncio.gather(*(intake.take(inbound(chat, 1)) for chat in CHATS))
    assert all(isinstance(o, Spooled) for o in outcomes), outcomes
    assert await stored(desk) == []
    commits.fail = 0
    assert await intake.replay_once() == len(CHATS)
    assert sorted(await stored(desk)) == sorted(f"{chat}:1" for chat in CHATS)


# Another process storing the same message at the same moment (a unique-key clash), or PostgreSQL choosing
# this transaction as a deadlock's victim: the member's own failure, once.
MEMBER_FAILURES = {
    "unique_clash": lambda statement, parameters: sa_exc.IntegrityError(
        statement, parameters, Exception("duplicate key (injected)")
    ),
    "deadlock_victim": lambda statement, parameters: sa_exc.DBAPIError(
        statement, parameters, Exception("deadlock detected (injected)")
    ),
}


@pytest.mark.parametrize("failure", sorted(MEMBER_FAILURES))
async def test_a_member_that_fails_is_retried_alone_and_the_others_commit_together(
    desk: Desk, engine: AsyncEngine, intake: SafeIntake, failure: str
) -> None:
    commits = CommitLog(engine)
    clashes = itertools.count()

    def clash_once(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO MESSAGES") and "poison" in repr(parameters):
            # Twice: in the group without savepoints (rolled back whole) and in its SAVEPOINT when the group
            # runs again; then alone it goes in.
            if next(clashes) < 2:
                raise MEMBER_FAILURES[failure](statement, parameters)

    event.listen(engine.sync_engine, "before_cursor_execute", clash_once)
    try:
        messages = [inbound(chat, 1) for chat in CHATS]
        messages[2] = inbound(CHATS[2], 1, text="poison")
        outcomes = await asyncio.gather(*(intake.take(m) for m in messages))
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", clash_once)
    assert all(isinstance(o, ReceiveResult) and o.created for o in outcomes), outcomes
    # The group (five messages) in one commit, the clashed one retried in a transaction of its own.
    assert commits.count == 2
    assert sorted(await stored(desk)) == sorted(f"{chat}:1" for chat in CHATS)
    async with desk.sessions() as session:
        assert len(list(await session.scalars(select(Ticket)))) == len(CHATS)


async def test_each_chat_keeps_its_order_when_chats_write_together(desk: Desk) -> None:
    async with open_harness(desk) as harness:
        pushed: dict[int, list[int]] = {chat: [] for chat in CHATS[:4]}
        for n in range(4):
            for chat in pushed:
                update = await harness.api.push_message(chat, f"Part {n} of our request about wetlands")
                pushed[chat].append(update["message"]["message_id"])

        async def all_in(harness: Harness = harness) -> bool:
            return len(await stored(harness.desk)) == 16

        await harness.until(all_in, within=60)
        for chat, ids in pushed.items():
            mine = [m for m in await stored(desk) if m.startswith(f"{chat}:")]
            assert mine == [f"{chat}:{i}" for i in ids]
            await harness.sent_to(chat, 1)  # acknowledged
