"""A batch's first look-ups read ahead (issue #12): the duplicate check, the sender's requester row and
their automatic mails this hour, one statement each for the whole batch; a key asked again within the
batch is read from the database, so what an earlier mail wrote counts (both databases, pymap-free: the
batch goes straight to ``receive_mail``)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.ext.asyncio import AsyncEngine
from test_mail_limits import OWN, plain_mail

from helpdesk.config import Settings
from helpdesk.db.models import AuditEvent, AutoReply, Message, Requester, Ticket
from helpdesk.email.intake import receive_mail
from helpdesk.service import Runtime, open_runtime

_LOOKUP = re.compile(r"^SELECT .* FROM (messages|requesters|mail_auto_replies)\b", re.S)


@pytest.fixture
async def runtime(engine: AsyncEngine, database_url: str) -> AsyncIterator[Runtime]:
    settings = Settings(database_url=database_url, mail_from=OWN, mail_ack_limit_per_hour=2)
    async with open_runtime(settings, migrate=False) as rt:
        yield rt


def _lookups(engine: AsyncEngine) -> tuple[list[str], Any]:
    seen: list[str] = []

    def on_execute(_c: Any, _cur: Any, statement: str, *_rest: Any) -> None:
        match = _LOOKUP.match(" ".join(statement.split()))
        if match:
            seen.append(match.group(1))

    event.listen(engine.sync_engine, "before_cursor_execute", on_execute)
    return seen, on_execute


async def test_a_batch_reads_its_lookups_ahead_and_a_repeated_key_reads_again(
    runtime: Runtime, engine: AsyncEngine
) -> None:
    intake = runtime.mail
    assert intake is not None
    # Stored before the batch: mail 1 (its receipt counted for s1), so mail 1 again is a duplicate.
    assert 1 in (await receive_mail(intake, [(1, plain_mail(1))])).committed
    batch = [
        (2, plain_mail(1)),  # stored already: a duplicate, answered by the read-ahead
        (3, plain_mail(3)),
        (4, plain_mail(4)),
        (5, plain_mail(5, From="Sender 5 <S3@ngo.example.org>")),  # s3 again: its row from mail 3
        (6, plain_mail(6, From="Sender 6 <s3@ngo.example.org>")),  # s3's third receipt: over the limit of 2
        (7, plain_mail(4)),  # mail 4's Message-ID again in the same batch: a duplicate of what it stored
        (8, plain_mail(8, From="Sender 8 <s1@ngo.example.org>")),  # s1, with a receipt before the batch
    ]
    seen, listener = _lookups(runtime.engine)
    try:
        handled = await receive_mail(intake, batch)
    finally:
        event.remove(runtime.engine.sync_engine, "before_cursor_execute", listener)
    assert sorted(handled.committed) == [2, 3, 4, 5, 6, 7, 8]
    # One read ahead per table for the batch; then only the repeated keys ask again: s3 twice (requester,
    # receipts), mail 4's id once.
    assert seen.count("messages") == 1 + 1, seen
    assert seen.count("requesters") == 1 + 2, seen
    assert seen.count("mail_auto_replies") == 1 + 2, seen

    async with runtime.desk.sessions() as session:
        tickets = await session.scalar(select(func.count()).select_from(Ticket))
        assert tickets == 1 + 5  # mails 3, 4, 5, 6, 8 opened tickets; 2 and 7 were duplicates
        inbound = await session.scalar(
            select(func.count()).select_from(Message).where(Message.kind == "inbound")
        )
        assert inbound == 6
        rows = list(await session.scalars(select(Requester.email).order_by(Requester.id)))
        assert rows == ["s1@ngo.example.org", "s3@ngo.example.org", "s4@ngo.example.org"]
        receipts = dict(
            (
                await session.execute(select(AutoReply.recipient, func.count()).group_by(AutoReply.recipient))
            ).all()
        )
        # The limit holds across the batch: s3 got two, the third was suppressed and noted; s1 got its second.
        assert receipts == {"s1@ngo.example.org": 2, "s3@ngo.example.org": 2, "s4@ngo.example.org": 1}
        suppressed = await session.scalar(
            select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "auto_reply_suppressed")
        )
        assert suppressed == 1
