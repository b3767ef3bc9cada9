"""A person forgotten at the instant their mail is received, on PostgreSQL: both commit, neither deadlocks.

The attack: a mail batch (one transaction) follows up the person's tickets in the order the mails arrived,
newest ticket first, while forget locks the same tickets oldest first; each held a ticket the other waited
for, and PostgreSQL ended forget with a deadlock error. The one lock order now: the requester's row first
(intake shares it, forget takes it alone), then tickets.
"""

from __future__ import annotations

import asyncio
import os

import pytest
from row_locks import waiting_on_a_lock
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from helpdesk.db.models import Message, OutboxItem, Requester, Ticket
from helpdesk.desk import Desk
from helpdesk.messages import InboundMessage, Sender
from helpdesk.usecases.personal_data.forget import forget_person
from helpdesk.usecases.personal_data.person import Person
from helpdesk.usecases.receive import receive
from helpdesk.usecases.receive_batch import receive_batch
from helpdesk.usecases.self_service import requester_blocked
from helpdesk.usecases.take import take_message

ROUNDS = int(os.environ.get("HELPDESK_TEST_DEADLOCK_ROUNDS", "25"))
TICKETS = 6


def mail(message_id: str, sender: Sender, subject: str) -> InboundMessage:
    return InboundMessage("email", f"<{message_id}@mail.uz>", sender, f"About {subject}", subject=subject)


async def test_forget_and_intake_of_the_same_person_at_once_never_deadlock(
    desk: Desk, database_url: str
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("row locks and deadlock detection are PostgreSQL's")
    failures: list[BaseException] = []
    for n in range(ROUNDS):
        person = Sender(name=f"Person {n}", email=f"person.{n}@mail.uz")
        chat = Sender(name=f"Chat {n}", telegram_user_id=700_000 + n, telegram_chat_id=700_000 + n)
        tickets = [await receive(desk, mail(f"{n}.{k}", person, f"Request {n}.{k}")) for k in range(TICKETS)]
        await receive(desk, InboundMessage("telegram", f"{chat.telegram_chat_id}:1", chat, "Wetlands"))
        follow_ups = [
            mail(f"{n}.re.{t.reference}", person, f"Re: [{t.reference}] Request") for t in reversed(tickets)
        ]
        outcomes = await asyncio.gather(
            forget_person(desk, Person(email=person.email), actor="cli:test"),
            receive_batch(desk, follow_ups),
            receive(desk, mail(f"{n}.new", person, "Another question")),
            forget_person(desk, Person(telegram_id=chat.telegram_user_id), actor="cli:test"),
            take_message(desk, InboundMessage("telegram", f"{chat.telegram_chat_id}:2", chat, "And more")),
            return_exceptions=True,
        )
        batch = outcomes[1] if isinstance(outcomes[1], list) else [outcomes[1]]
        failures += [o for o in [*outcomes, *batch] if isinstance(o, BaseException)]
    assert not failures, [f"{type(f).__name__}: {str(f)[:200]}" for f in failures]

    async with desk.sessions() as session:
        stored = await session.scalar(
            select(func.count()).select_from(Message).where(Message.kind == "inbound")
        )
        # Whichever came first: a mail taken before forget was scrubbed with the rest, one taken after it
        # belongs to a new requester; no forgotten row kept the address.
        forgotten = await session.scalar(
            select(func.count())
            .select_from(Requester)
            .where(Requester.name.like("forgotten-%"), Requester.email.is_not(None))
        )
    assert stored == ROUNDS * (TICKETS * 2 + 3)
    assert forgotten == 0


async def test_forget_takes_a_send_s_outbox_row_before_its_message_as_the_worker_marks_them(
    desk: Desk, database_url: str, engine: AsyncEngine
) -> None:
    """The delivery worker marks a send's outbox row, then its message row (each by id). Forget scrubbed the
    message first and the outbox row after: with a mark in flight on the same receipt, each waited for the
    other. Now forget locks the outbox rows of the person's tickets before it touches any message."""
    if not database_url.startswith("postgresql"):
        pytest.skip("row locks are PostgreSQL's")
    chat = Sender(name="Chat", telegram_user_id=710_001, telegram_chat_id=710_001)
    await take_message(desk, InboundMessage("telegram", "710001:1", chat, "Wetland restoration guidance"))
    async with desk.sessions() as session:
        item_id, message_id = (
            await session.execute(
                select(OutboxItem.id, OutboxItem.message_id).where(OutboxItem.message_id.is_not(None))
            )
        ).one()

    async with engine.connect() as marking:  # as the worker's mark, between its two steps
        await marking.execute(text("SELECT id FROM outbox WHERE id = :id FOR UPDATE"), {"id": item_id})
        forgetting = asyncio.create_task(forget_person(desk, Person(telegram_id=710_001), actor="cli:test"))
        # Until forget waits on the held outbox row.
        assert await waiting_on_a_lock(engine, forgetting) and not forgetting.done()
        # The mark's second step: the message must be free (on the old order forget held it, and the two
        # waited on each other until PostgreSQL aborted one).
        await marking.execute(
            text("SELECT id FROM messages WHERE id = :id FOR UPDATE NOWAIT"), {"id": message_id}
        )
        await marking.commit()
    result = await forgetting
    assert result.messages >= 1 and result.outbox_items >= 1


async def test_a_chat_command_on_active_tickets_waits_for_the_requester_row_before_any_ticket(
    desk: Desk, database_url: str, engine: AsyncEngine
) -> None:
    """Self-service moves (the bot blocked, /lang, /party) lock a requester's active tickets; they used to
    take them in scan order without the requester row, so they could cross a forget, which holds that row
    first. Now they share the requester row first, then take the tickets by id."""
    if not database_url.startswith("postgresql"):
        pytest.skip("row locks are PostgreSQL's")
    chat = Sender(name="Chat", telegram_user_id=720_001, telegram_chat_id=720_001)
    await take_message(desk, InboundMessage("telegram", "720001:1", chat, "Wetland restoration guidance"))
    async with desk.sessions() as session:
        requester_id, ticket_id = (
            await session.execute(
                select(Requester.id, Ticket.id).join(Ticket, Ticket.requester_id == Requester.id)
            )
        ).one()

    async with engine.connect() as forgetting:  # as forget, which takes the requester row first
        await forgetting.execute(
            text("SELECT id FROM requesters WHERE id = :id FOR UPDATE"), {"id": requester_id}
        )
        noting = asyncio.create_task(requester_blocked(desk, 720_001, blocked=True))
        # Until the command waits on the held requester row.
        assert await waiting_on_a_lock(engine, noting) and not noting.done()
        await forgetting.execute(
            text("SELECT id FROM tickets WHERE id = :id FOR UPDATE NOWAIT"), {"id": ticket_id}
        )
        await forgetting.rollback()
    assert await noting == [await _reference(desk, ticket_id)]


async def _reference(desk: Desk, ticket_id: int) -> str:
    async with desk.sessions() as session:
        return (await session.get_one(Ticket, ticket_id)).reference
