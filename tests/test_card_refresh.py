"""Staff-card refreshes are coalesced: one card item waits per ticket; the card sent shows the latest state.

A card is drawn when the worker sends it, so a card item still waiting in the outbox already covers every
later change; only an item a worker holds (leased: it may be drawn already) lets a new one be queued.
Real Bot API stand-in on loopback, SQLite and PostgreSQL.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select, update

from bot.sender import TelegramSender
from helpdesk.db.models import OutboxItem, Ticket
from helpdesk.db.types import utcnow
from helpdesk.desk import Desk
from helpdesk.messages import InboundMessage, Sender
from helpdesk.usecases.cards import queue_card
from helpdesk.usecases.receive import receive
from helpdesk.worker import DeliveryWorker
from standins.telegram_api import TelegramApiStandIn

STAFF_CHAT = -1001200
FARRUKH = Sender(name="Farrukh", telegram_user_id=5001, telegram_chat_id=5001, language="ru")
CARD = (OutboxItem.channel == "telegram", OutboxItem.message_id.is_(None))


async def _write(desk: Desk, n: int) -> None:
    text = "Как отчитаться по кадастру?" if n == 0 else f"Уточнение {n}"
    inbound = InboundMessage(channel="telegram", channel_message_id=f"5001:{n}", sender=FARRUKH, text=text)
    await receive(desk, inbound)


async def _queued_cards(desk: Desk) -> int:
    async with desk.sessions() as session:
        count = await session.scalar(
            select(func.count()).select_from(OutboxItem).where(*CARD, OutboxItem.status == "pending")
        )
    return count or 0


async def _deliver_all(desk: Desk, bot_api: TelegramApiStandIn) -> None:
    async with TelegramSender(bot_api.token, bot_api.base_url) as telegram:
        worker = DeliveryWorker(desk.sessions, {"telegram": telegram})
        while await worker.deliver_due():
            pass


def _card(bot_api: TelegramApiStandIn) -> str:
    posted = bot_api.sent_messages(STAFF_CHAT)
    assert len(posted) == 1  # one card per ticket, edited in place
    return str(posted[0]["text"])


async def test_twenty_follow_ups_leave_one_card_item_and_it_shows_them_all(
    desk: Desk, bot_api: TelegramApiStandIn
) -> None:
    desk.staff_telegram_chat_id = STAFF_CHAT
    for n in range(21):
        await _write(desk, n)
        assert await _queued_cards(desk) == 1
    await _deliver_all(desk, bot_api)
    assert "сообщений: 21" in _card(bot_api)
    assert await _queued_cards(desk) == 0


async def test_a_card_being_sent_is_followed_by_one_more(desk: Desk, bot_api: TelegramApiStandIn) -> None:
    desk.staff_telegram_chat_id = STAFF_CHAT
    await _write(desk, 0)
    async with desk.sessions.begin() as session:
        # A worker holds the card item: it may have drawn the card already, before the follow-ups below.
        await session.execute(
            update(OutboxItem)
            .where(*CARD)
            .values(locked_until=utcnow() + timedelta(minutes=5), claim_token="worker-a")
        )
    for n in range(1, 6):
        await _write(desk, n)
    assert await _queued_cards(desk) == 2  # the held one, and one more for all five follow-ups
    async with desk.sessions.begin() as session:
        # That worker died before sending: once the lease runs out, the item is sent like any other.
        await session.execute(
            update(OutboxItem).where(*CARD).values(locked_until=utcnow() - timedelta(seconds=1))
        )
    await _deliver_all(desk, bot_api)
    assert "сообщений: 6" in _card(bot_api)


async def test_a_settled_card_queued_while_one_is_in_flight_waits_a_whole_period(
    desk: Desk, bot_api: TelegramApiStandIn
) -> None:
    desk.staff_telegram_chat_id = STAFF_CHAT
    await _write(desk, 0)
    async with desk.sessions.begin() as session:
        # The last card was sent long ago and a worker is sending the next one now.
        await session.execute(
            update(OutboxItem).where(*CARD).values(status="sent", sent_at=utcnow() - timedelta(hours=1))
        )
    await _write(desk, 1)
    async with desk.sessions.begin() as session:
        await session.execute(
            update(OutboxItem)
            .where(*CARD, OutboxItem.status == "pending")
            .values(locked_until=utcnow() + timedelta(minutes=5), claim_token="worker-a")
        )
    queued_at = utcnow()
    async with desk.sessions.begin() as session:
        ticket = await session.scalar(select(Ticket))
        assert ticket is not None
        await queue_card(desk, session, ticket, settle_seconds=5.0)
    async with desk.sessions() as session:
        due = await session.scalar(
            select(OutboxItem.next_attempt_at).where(
                *CARD, OutboxItem.status == "pending", OutboxItem.locked_until.is_(None)
            )
        )
    # Due a settle period after the card in flight, not at once (the card before it was sent an hour ago).
    assert due is not None and due >= queued_at + timedelta(seconds=5)


async def test_a_card_drawn_while_a_follow_up_commits_is_drawn_again(
    desk: Desk, bot_api: TelegramApiStandIn
) -> None:
    """PostgreSQL: a follow-up's transaction sees the ticket's card item waiting and queues none; a worker
    claiming that item before the follow-up commits would draw a card without it and leave nothing queued.
    The waiting item is locked by the follow-up's read, so the claim passes it by until the commit."""
    from dataclasses import replace

    import pytest

    from helpdesk.usecases.receive import receive_in_session

    if desk.sessions.kw["bind"].dialect.name != "postgresql":
        pytest.skip("SQLite: the worker's claim waits for the follow-up's writer lock")
    desk.staff_telegram_chat_id = STAFF_CHAT
    desk.limits = replace(desk.limits, card_refresh_seconds=0)
    await _write(desk, 0)
    await _deliver_all(desk, bot_api)  # the card is posted: later ones are edits of it
    # (ids from 100 on: the receipt sent to the chat took the stand-in's first ids)
    first = InboundMessage(channel="telegram", channel_message_id="5001:101", sender=FARRUKH, text="Ещё")
    await receive(desk, first)
    assert await _queued_cards(desk) == 1
    second = InboundMessage(channel="telegram", channel_message_id="5001:102", sender=FARRUKH, text="И ещё")
    async with desk.sessions() as session, session.begin():
        await receive_in_session(desk, session, second)  # the waiting card covers it: none added
        await _deliver_all(desk, bot_api)  # a worker, while the follow-up is not committed yet
    await _deliver_all(desk, bot_api)
    assert "сообщений: 3" in _card(bot_api)
