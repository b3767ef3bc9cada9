"""One Telegram requester flooding the desk, through the real PTB client and the Bot API stand-in, on SQLite
and PostgreSQL: every message stored, few receipts and card edits, open tickets capped, and another
requester answered promptly meanwhile.

Counts scale with HELPDESK_FAULT_FLOOD_MESSAGES and HELPDESK_FAULT_FLOOD_NEW (the issue's 1,000 and 300).
"""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import func, select
from telegram_harness import STAFF_CHAT, Harness, open_harness

from helpdesk.db.models import Message, Ticket
from helpdesk.desk import Desk
from helpdesk.flood import FloodLimits
from helpdesk.usecases.followup_question import MAX_HELD

FLOODER = 6101
OTHER = 6102


def scale(name: str, default: int) -> int:
    return int(os.environ.get(f"HELPDESK_FAULT_{name.upper()}", default))


@pytest.fixture
async def harness(desk: Desk) -> AsyncIterator[Harness]:
    async with open_harness(desk) as opened:
        yield opened


async def _inbound_count(harness: Harness, chat: int) -> int:
    async with harness.desk.sessions() as session:
        count = await session.scalar(
            select(func.count())
            .select_from(Message)
            .where(Message.kind == "inbound", Message.channel_message_id.like(f"{chat}:%"))
        )
    return count or 0


def _cards_posted(harness: Harness) -> int:
    return len(harness.api.sent_messages(STAFF_CHAT))


def _card_edits(harness: Harness) -> int:
    return sum(1 for c in harness.api.calls_to("editMessageText") if c.params.get("chat_id") == STAFF_CHAT)


async def test_flood_from_one_requester_is_stored_quietly_and_does_not_delay_another(
    harness: Harness,
) -> None:
    messages = scale("flood_messages", 200)
    api = harness.api
    # The flooder already has a ticket, as in the issue: the flood is all follow-ups.
    await api.push_message(FLOODER, "We need help with the wetlands inventory", user={"language_code": "en"})
    await harness.sent_to(FLOODER, 1)
    began = time.monotonic()
    for n in range(messages):
        await api.push_message(FLOODER, f"detail {n}", user={"language_code": "en"})
    other_sent = time.monotonic()
    await api.push_message(OTHER, "Request about invasive species monitoring", user={"language_code": "en"})
    [other_ack] = await harness.sent_to(OTHER, 1)
    answered = next(c.at for c in api.calls_to("sendMessage") if c.ok and c.params.get("chat_id") == OTHER)
    other_delay = answered - other_sent

    async def all_stored() -> bool:
        return await _inbound_count(harness, FLOODER) == messages + 1

    await harness.until(all_stored, within=120)
    flood_seconds = time.monotonic() - began
    receipts = len(api.sent_messages(FLOODER))
    print(
        f"\nflood: {messages} messages stored in {flood_seconds:.1f}s; receipts to the flooder {receipts}; "
        f"card posts {_cards_posted(harness)}, card edits {_card_edits(harness)}; "
        f"other requester's receipt after {other_delay:.2f}s"
    )
    assert "registered" in other_ack["text"]
    # One registration receipt plus a few follow-up receipts per minute of flood.
    minutes = int(flood_seconds // 60) + 1
    assert receipts <= 1 + FloodLimits().receipts_per_minute * minutes
    # One card, redrawn at most once per settle period while the flood lasts (plus the other's card).
    settle = FloodLimits().card_refresh_seconds
    assert _cards_posted(harness) == 2
    assert _card_edits(harness) <= flood_seconds / settle + 2
    # Another requester's message does not queue behind the flood (on main it waited for all of it).
    assert other_delay < 5.0, other_delay


async def test_new_requests_beyond_the_cap_join_the_latest_open_ticket(harness: Harness) -> None:
    requests = scale("flood_new", 60)
    cap = FloodLimits().max_open_tickets
    api = harness.api
    for n in range(requests):
        await api.push_message(
            FLOODER, f"/new Request number {n} about protected areas", user={"language_code": "en"}
        )

    async def all_stored() -> bool:
        return await _inbound_count(harness, FLOODER) == requests

    await harness.until(all_stored, within=120)
    tickets = await harness.tickets()
    assert len(tickets) == cap
    # Receipts: one per ticket opened, then the polite answer (listing the open tickets) a few times.
    sent = await harness.sent_to(FLOODER, cap + 1)
    acks, rest = sent[:cap], sent[cap:]
    assert all("registered" in m["text"] for m in acks)
    assert rest and all("open requests" in m["text"] for m in rest)
    assert all(t.reference in rest[0]["text"] for t in tickets)
    assert len(sent) <= cap + FloodLimits().receipts_per_minute
    # Nothing lost: what did not open a ticket went to the most recent one.
    async with harness.desk.sessions() as session:
        latest = await session.scalar(select(Ticket).order_by(Ticket.id.desc()).limit(1))
        assert latest is not None
        on_latest = await session.scalar(
            select(func.count())
            .select_from(Message)
            .where(Message.ticket_id == latest.id, Message.kind == "inbound")
        )
    assert on_latest == requests - cap + 1
    await harness.until(lambda: _cards_async(harness, cap))
    assert _cards_posted(harness) == cap


async def _cards_async(harness: Harness, count: int) -> bool:
    return _cards_posted(harness) >= count


async def test_flood_while_a_question_is_open_is_held_only_up_to_a_bound(harness: Harness) -> None:
    api = harness.api
    for n in range(2):
        await api.push_message(
            FLOODER, f"/new Separate request {n} on Target {n + 1}", user={"language_code": "en"}
        )
    await harness.sent_to(FLOODER, 2)
    extra = MAX_HELD + 10
    for n in range(extra):
        await api.push_message(FLOODER, f"which one? {n}", user={"language_code": "en"})

    async def overflow_stored() -> bool:
        return await _inbound_count(harness, FLOODER) == 2 + extra - MAX_HELD

    await harness.until(overflow_stored, within=60)
    questions = [m for m in api.sent_messages(FLOODER) if "reply_markup" in m]
    assert len(questions) == 1  # one question for the whole burst
    question = questions[0]
    offered = [b["callback_data"] for row in question["reply_markup"]["inline_keyboard"][1:] for b in row]
    # The overflow joined the ticket offered first (the most recently active); pick the other one.
    pick = offered[1]
    picked = next(t for t in await harness.tickets() if pick.endswith(t.reference))
    overflowed = next(t for t in await harness.tickets() if offered[0].endswith(t.reference))
    await api.push_callback_query(FLOODER, pick, message_id=question["message_id"])

    async def all_stored() -> bool:
        return await _inbound_count(harness, FLOODER) == 2 + extra

    await harness.until(all_stored, within=60)
    counts = {}
    async with harness.desk.sessions() as session:
        for ticket in (picked, overflowed):
            counts[ticket.reference] = await session.scalar(
                select(func.count())
                .select_from(Message)
                .where(Message.ticket_id == ticket.id, Message.kind == "inbound")
            )
    # The held messages followed the answer; the overflow was stored meanwhile on the other.
    assert counts == {picked.reference: 1 + MAX_HELD, overflowed.reference: 1 + extra - MAX_HELD}
