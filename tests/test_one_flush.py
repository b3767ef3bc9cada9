"""A group's rows written by one flush (helpdesk/usecases/one_flush.py): a Telegram group commit and a mail
batch flush once, not once per message, and a message that must read an earlier one's rows still does."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import timedelta
from typing import Any

from sqlalchemy import event, func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import Session

from helpdesk.db.models import AuditEvent, Message, OutboxItem, Referral, Requester, Ticket
from helpdesk.db.types import utcnow
from helpdesk.desk import Desk
from helpdesk.messages import InboundMessage, Sender
from helpdesk.usecases.followup_question import Asked, Held
from helpdesk.usecases.receive import ReceiveResult, receive
from helpdesk.usecases.receive_batch import receive_batch
from helpdesk.usecases.take import take_message, take_together

STAFF_CHAT = -1001234


class Counted:
    def __init__(self) -> None:
        self.flushes = 0
        self.statements: list[str] = []
        self.full: list[str] = []


@contextmanager
def counting(engine: AsyncEngine) -> Iterator[Counted]:
    counted = Counted()

    def on_flush(*_: Any) -> None:
        counted.flushes += 1

    def on_execute(_c: Any, _cur: Any, statement: str, *_rest: Any) -> None:
        counted.statements.append(" ".join(statement.split()[:3]).upper())
        counted.full.append(" ".join(statement.split()))

    event.listen(Session, "after_flush", on_flush)
    event.listen(engine.sync_engine, "before_cursor_execute", on_execute)
    try:
        yield counted
    finally:
        event.remove(Session, "after_flush", on_flush)
        event.remove(engine.sync_engine, "before_cursor_execute", on_execute)


def chat_message(chat: int) -> InboundMessage:
    sender = Sender(name=f"Chat {chat}", telegram_user_id=chat, telegram_chat_id=chat, language="en")
    return InboundMessage("telegram", f"{chat}:1", sender, "We need help with our protected area plan")


def mail(n: int, sender: str, *, subject: str = "Wetland inventory", **kw: Any) -> InboundMessage:
    return InboundMessage(
        channel="email",
        channel_message_id=f"<flush.{n}@example.org>",
        sender=Sender(name=sender.split("@")[0], email=sender),
        subject=subject,
        text="Our ministry needs guidance on the inventory of wetlands under target 2.",
        **kw,
    )


async def _count(desk: Desk, model: type, *where: Any) -> int:
    async with desk.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


async def test_a_group_of_chats_is_written_by_one_flush(
    desk: Desk, engine: AsyncEngine, database_url: str
) -> None:
    # A Telegram-only desk (no mail, so no staff notification mails to address).
    desk = replace(desk, staff_telegram_chat_id=STAFF_CHAT, mail_from=None)
    chats = [7100 + n for n in range(6)]
    with counting(engine) as counted:
        outcomes = await take_together(desk, [chat_message(chat) for chat in chats])
    results = [o for o in outcomes if isinstance(o, ReceiveResult)]
    assert len(results) == len(chats) and all(r.created for r in results), outcomes
    assert len({r.ticket_id for r in results}) == len(chats) and None not in {r.ticket_id for r in results}
    # The rows of six messages, then the six cards queued once they had ids: two flushes, not one per message.
    assert counted.flushes == 2, counted.flushes
    # The group's twelve messages (six inbound, six receipts) in one INSERT on either database: on SQLite the
    # rows' client-side sentinel hands each its id (the receipts' outbox rows below link to the right one).
    assert counted.statements.count("INSERT INTO MESSAGES") == 1, counted.statements
    if database_url.startswith("postgresql"):
        # One INSERT per table for the whole group (SQLite's ORM writes other RETURNING rows one by one).
        assert counted.statements.count("INSERT INTO TICKETS") == 1, counted.statements
    # The audit trail of the whole group is one INSERT on either database (plain rows, not ORM objects: on
    # SQLite the ORM would insert them one by one), written in the order its events happened.
    assert counted.statements.count("INSERT INTO AUDIT_EVENTS") == 1, counted.statements
    # So are the six receipts' outbox items; the cards, queued after the flush, are ORM rows (batched on
    # PostgreSQL only).
    cards = 1 if database_url.startswith("postgresql") else len(chats)
    assert counted.statements.count("INSERT INTO OUTBOX") == 1 + cards, counted.statements
    async with desk.sessions() as session:
        for result in results:
            trail = await session.scalars(
                select(AuditEvent.action)
                .where(AuditEvent.ticket_id == result.ticket_id)
                .order_by(AuditEvent.id)
            )
            assert list(trail) == ["created", "classified", "received"]
    # The duplicate check and the requester look-up read ahead for the whole group, one statement each.
    selects = [s for s in counted.full if s.startswith("SELECT") and " JOIN " not in s]
    assert len([s for s in selects if "FROM requesters" in s]) == 1, selects
    assert len([s for s in selects if "FROM messages" in s and "channel_message_id" in s]) == 1, selects
    # A Telegram sender has no address to claim staff with: the staff accounts are not read.
    assert not [s for s in selects if "FROM staff_accounts" in s], selects
    # The six tickets' card queues read together once their rows had ids, not one statement each.
    assert len([s for s in selects if "FROM outbox" in s]) == 1, selects
    for result in results:
        assert await _count(desk, Message, Message.ticket_id == result.ticket_id) == 2  # inbound + receipt
        cards = await _count(
            desk, OutboxItem, OutboxItem.ticket_id == result.ticket_id, OutboxItem.message_id.is_(None)
        )
        assert cards == 1
        async with desk.sessions() as session:
            [(linked_kind, linked_ticket)] = (
                await session.execute(
                    select(Message.kind, Message.ticket_id)
                    .join(OutboxItem, OutboxItem.message_id == Message.id)
                    .where(OutboxItem.ticket_id == result.ticket_id)
                )
            ).all()
        assert (linked_kind, linked_ticket) == ("outbound", result.ticket_id)  # the receipt, on its message


async def test_a_group_s_card_queues_read_together_are_each_its_own_ticket_s(
    desk: Desk, engine: AsyncEngine
) -> None:
    """Three chats' follow-ups in one group: one ticket's card still waits (nothing queued), one's was sent
    long ago (a new card due now), one's is being sent (a new card due a settle period later)."""
    desk = replace(desk, staff_telegram_chat_id=STAFF_CHAT, mail_from=None)
    waits, sent, sending = 7301, 7302, 7303
    opened = await take_together(desk, [chat_message(chat) for chat in (waits, sent, sending)])
    ids = {chat: o.ticket_id for chat, o in zip((waits, sent, sending), opened, strict=True)}
    card = (OutboxItem.message_id.is_(None), OutboxItem.channel == "telegram")
    async with desk.sessions.begin() as session:
        await session.execute(
            update(OutboxItem)
            .where(*card, OutboxItem.ticket_id == ids[sent])
            .values(status="sent", sent_at=utcnow() - timedelta(hours=1), attempts=1)
        )
        await session.execute(
            update(OutboxItem)
            .where(*card, OutboxItem.ticket_id == ids[sending])
            .values(locked_until=utcnow() + timedelta(minutes=5), claim_token="worker-a")
        )
    queued_at = utcnow()
    with counting(engine) as counted:
        followed = await take_together(
            desk,
            [replace(chat_message(chat), channel_message_id=f"{chat}:2") for chat in (waits, sent, sending)],
        )
    assert [o.ticket_id for o in followed if isinstance(o, ReceiveResult)] == list(ids.values()), followed
    assert len([s for s in counted.full if s.startswith("SELECT") and "FROM outbox" in s]) == 1
    async with desk.sessions() as session:
        due = {
            ticket_id: sorted(
                await session.scalars(
                    select(OutboxItem.next_attempt_at).where(
                        *card, OutboxItem.ticket_id == ticket_id, OutboxItem.status == "pending"
                    )
                )
            )
            for ticket_id in ids.values()
        }
    assert len(due[ids[waits]]) == 1  # the waiting card covers the follow-up
    [now_due] = due[ids[sent]]
    assert now_due < queued_at + timedelta(seconds=5)
    _in_flight, settled = due[ids[sending]]
    assert settled >= queued_at + timedelta(seconds=desk.limits.card_refresh_seconds)


async def test_a_batch_message_reads_what_an_earlier_one_of_the_batch_wrote(desk: Desk) -> None:
    outcomes = await receive_batch(
        desk,
        [
            mail(1, "aliya@eco.gov.kz"),
            mail(2, "bakyt@nature.kg", cc=("chyngyz@nature.kg",)),
            # The same new sender again, answering their own first mail: one requester, the same ticket.
            mail(
                3, "aliya@eco.gov.kz", subject="Re: Wetland inventory", replies_to=("<flush.1@example.org>",)
            ),
            # Someone the second mail copied in answers it: a participant of that ticket already.
            mail(
                4, "chyngyz@nature.kg", subject="Re: Wetland inventory", replies_to=("<flush.2@example.org>",)
            ),
        ],
    )
    first, second, third, fourth = outcomes
    assert isinstance(first, ReceiveResult) and isinstance(second, ReceiveResult), outcomes
    assert isinstance(third, ReceiveResult) and isinstance(fourth, ReceiveResult), outcomes
    assert first.created and second.created and not third.created and not fourth.created
    assert third.ticket_id == first.ticket_id and fourth.ticket_id == second.ticket_id
    assert await _count(desk, Requester, Requester.email == "aliya@eco.gov.kz") == 1
    assert await _count(desk, Ticket) == 2


async def test_two_messages_of_a_batch_on_one_ticket_queue_one_card(desk: Desk) -> None:
    desk = replace(desk, staff_telegram_chat_id=STAFF_CHAT)
    opened = await receive(desk, mail(10, "aliya@eco.gov.kz", cc=("dana@eco.gov.kz",)))
    async with desk.sessions.begin() as session:  # its first card posted long ago: the next is a new item
        await session.execute(
            update(OutboxItem).values(status="sent", sent_at=utcnow() - timedelta(hours=1), attempts=1)
        )
    tagged = f"Re: [{opened.reference}] Wetland inventory"
    outcomes = await receive_batch(
        desk,
        [mail(11, "aliya@eco.gov.kz", subject=tagged), mail(12, "dana@eco.gov.kz", subject=tagged)],
    )
    assert all(isinstance(o, ReceiveResult) and o.ticket_id == opened.ticket_id for o in outcomes), outcomes
    # The second read the first's card, still waiting: the burst is one card, as when received one by one.
    waiting = await _count(
        desk,
        OutboxItem,
        OutboxItem.ticket_id == opened.ticket_id,
        OutboxItem.message_id.is_(None),
        OutboxItem.channel == "telegram",
        OutboxItem.status == "pending",
    )
    assert waiting == 1
    assert await _count(desk, Message, Message.ticket_id == opened.ticket_id, Message.kind == "inbound") == 3


async def _asked_and_offered(desk: Desk) -> tuple[Sender, Sender, Asked, ReceiveResult]:
    """A requester with two open tickets was asked which one their next message continues; an expert was
    offered a ticket in their Telegram chat."""
    asker = Sender(name="Aigerim", telegram_user_id=8601, telegram_chat_id=8601, language="en")
    for n, text in enumerate(["Wetlands monitoring methodology", "Invasive species in Lake Issyk-Kul"]):
        await receive(desk, InboundMessage("telegram", f"8601:{900 + n}", asker, text, force_new=True))
    asked = await take_message(desk, InboundMessage("telegram", "8601:1", asker, "any news?"))
    assert isinstance(asked, Asked)
    referred = await receive(desk, mail(20, "aliya@eco.gov.kz"))
    async with desk.sessions.begin() as session:
        session.add(
            Referral(
                ticket_id=referred.ticket_id,
                expert_id="tg-1",
                channel="telegram",
                recipient="8602",
                language="ru",
                created_by="test",
            )
        )
    expert = Sender(name="Expert", telegram_user_id=8602, telegram_chat_id=8602, language="ru")
    return asker, expert, asked, referred


async def test_a_group_reads_open_questions_and_offers_ahead_and_still_holds_and_answers(
    desk: Desk, engine: AsyncEngine
) -> None:
    asker, expert, asked, referred = await _asked_and_offered(desk)
    with counting(engine) as counted:
        held, answered, new = await take_together(
            desk,
            [
                InboundMessage("telegram", "8601:2", asker, "and one more thing"),
                InboundMessage("telegram", "8602:1", expert, "Да, согласен"),
                chat_message(8603),
            ],
        )
    assert isinstance(held, Held) and held.token == asked.token, held
    assert isinstance(answered, ReceiveResult) and answered.ticket_id == referred.ticket_id, answered
    assert isinstance(new, ReceiveResult) and new.created, new
    async with desk.sessions() as session:
        [referral] = list(await session.scalars(select(Referral)))
        assert referral.state == "accepted"
    # Both were read for the whole group, one statement each.
    selects = [s for s in counted.full if s.startswith("SELECT")]
    assert (
        len([s for s in selects if "FROM pending_choices " in s and "pending_choice_messages" not in s]) == 1
    )
    assert len([s for s in selects if "FROM referrals" in s and "referrals.recipient" in s]) == 1, selects


async def test_a_lone_message_asks_its_three_first_questions_in_one_statement_and_still_holds_and_answers(
    desk: Desk, engine: AsyncEngine
) -> None:
    """A group of one (the usual message on a quiet desk): stored? question open? offer open? read together,
    and a follow-up takes its requester from its chat's open tickets instead of a look-up of its own."""
    asker, expert, asked, referred = await _asked_and_offered(desk)
    [held] = await take_together(desk, [InboundMessage("telegram", "8601:2", asker, "and one more thing")])
    assert isinstance(held, Held) and held.token == asked.token, held
    [answered] = await take_together(desk, [InboundMessage("telegram", "8602:1", expert, "Да, согласен")])
    assert isinstance(answered, ReceiveResult) and answered.ticket_id == referred.ticket_id, answered
    async with desk.sessions() as session:
        [referral] = list(await session.scalars(select(Referral)))
        assert referral.state == "accepted"

    first = chat_message(8603)
    [opened] = await take_together(desk, [first])
    assert isinstance(opened, ReceiveResult) and opened.created
    [again] = await take_together(desk, [first])
    assert isinstance(again, ReceiveResult) and again.duplicate and again.ticket_id == opened.ticket_id
    with counting(engine) as counted:
        [followed] = await take_together(desk, [replace(first, channel_message_id="8603:2", text="and more")])
    assert isinstance(followed, ReceiveResult) and followed.ticket_id == opened.ticket_id
    assert not followed.created and not followed.duplicate
    selects = [s for s in counted.full if s.startswith("SELECT")]
    firsts = [s for s in selects if "FROM pending_choices" in s]
    assert len(firsts) == 1 and "FROM messages" in firsts[0] and "FROM referrals" in firsts[0], selects
    assert not [s for s in selects if "FROM messages WHERE messages.channel =" in s and s not in firsts]
    # Its requester came with the chat's open tickets (one statement joins them).
    assert not [s for s in selects if "FROM requesters WHERE" in s], selects
    async with desk.sessions() as session:
        requesters = await session.scalar(
            select(func.count()).select_from(Requester).where(Requester.telegram_user_id == 8603)
        )
        assert requesters == 1
