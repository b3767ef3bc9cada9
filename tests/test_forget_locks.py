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
from sqlalchemy import func, select

from helpdesk.db.models import Message, Requester
from helpdesk.desk import Desk
from helpdesk.messages import InboundMessage, Sender
from helpdesk.usecases.personal_data.forget import forget_person
from helpdesk.usecases.personal_data.person import Person
from helpdesk.usecases.receive import receive
from helpdesk.usecases.receive_batch import receive_batch
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
