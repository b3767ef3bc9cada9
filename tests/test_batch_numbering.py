"""Ticket numbers in a batch (issue #12): the first from the counter row, the rest counted in memory and
written once before the commit; consecutive, never given twice, also when a refusal reruns the batch with
savepoints (both databases)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import event, select
from sqlalchemy.ext.asyncio import AsyncEngine
from test_email_batch import _poisoned
from test_mail_limits import OWN, plain_mail

from helpdesk.config import Settings
from helpdesk.db.models import Ticket, TicketCounter
from helpdesk.email.intake import receive_mail
from helpdesk.service import Runtime, open_runtime


@pytest.fixture
async def runtime(engine: AsyncEngine, database_url: str) -> AsyncIterator[Runtime]:
    async with open_runtime(Settings(database_url=database_url, mail_from=OWN), migrate=False) as rt:
        yield rt


async def _numbers(rt: Runtime) -> tuple[list[int], list[int]]:
    async with rt.desk.sessions() as session:
        references = await session.scalars(select(Ticket.reference).order_by(Ticket.id))
        counters = await session.scalars(select(TicketCounter.last))
        return [int(r.rsplit("-", 1)[1]) for r in references], list(counters)


async def test_a_batch_takes_consecutive_numbers_with_two_counter_statements(runtime: Runtime) -> None:
    statements: list[str] = []

    def seen(_c: Any, _cur: Any, statement: str, *_rest: Any) -> None:
        if "ticket_counters" in statement:
            statements.append(statement.split()[0].upper())

    event.listen(runtime.engine.sync_engine, "before_cursor_execute", seen)
    try:
        handled = await receive_mail(runtime.mail, [(uid, plain_mail(uid)) for uid in range(1, 7)])
    finally:
        event.remove(runtime.engine.sync_engine, "before_cursor_execute", seen)
    assert sorted(handled.committed) == list(range(1, 7))
    assert statements == ["INSERT", "UPDATE"]  # the first number's upsert, the last number written
    assert await _numbers(runtime) == ([1, 2, 3, 4, 5, 6], [6])
    # The next mail, alone, counts on from the row.
    await receive_mail(runtime.mail, [(7, plain_mail(7))])
    assert await _numbers(runtime) == ([1, 2, 3, 4, 5, 6, 7], [7])


async def test_a_rerun_with_savepoints_never_gives_a_number_twice(runtime: Runtime) -> None:
    # Mail 3 is refused for good: the batch runs again with a SAVEPOINT each, and again alone for mail 3.
    _poisoned(runtime.mail, "<plain-3@ngo.example.org>", ValueError("odd input"))
    handled = await receive_mail(runtime.mail, [(uid, plain_mail(uid)) for uid in range(1, 6)])
    assert sorted(handled.committed) == [1, 2, 3, 4, 5]  # mail 3 as a dead letter
    numbers, [counter] = await _numbers(runtime)
    assert len(numbers) == 4 and len(set(numbers)) == 4 and counter >= max(numbers)
    await receive_mail(runtime.mail, [(6, plain_mail(6)), (7, plain_mail(7))])
    after, [counter] = await _numbers(runtime)
    assert len(set(after)) == 6 and min(after[4:]) > max(numbers) and counter == max(after)
