"""The staff card's Refer button (issue #14 item 1): the real PTB client against the Bot API stand-in, the
desk on SQLite and PostgreSQL. It offers the ticket's top matched experts; a press refers the ticket, the
card shows the referral's state, and a stranger's press is refused as every button's is."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import select
from telegram_harness import STAFF_CHAT, STAFF_USER, Harness, open_harness

from helpdesk.db.models import Referral
from helpdesk.desk import Desk


@pytest.fixture
async def harness(desk: Desk) -> AsyncIterator[Harness]:
    async with open_harness(desk) as opened:
        yield opened


def buttons(message: dict[str, Any]) -> dict[str, str]:
    return {b["text"]: b["callback_data"] for row in message["reply_markup"]["inline_keyboard"] for b in row}


async def referrals(harness: Harness) -> list[Referral]:
    async with harness.desk.sessions() as session:
        return list((await session.scalars(select(Referral))).unique())


async def test_refer_button_offers_matched_experts_and_the_card_shows_the_referral(harness: Harness) -> None:
    api = harness.api
    await api.push_message(
        5301, "Need help with protected areas financing under Target 3", user={"language_code": "en"}
    )
    await harness.sent_to(5301)
    [ticket] = await harness.tickets()
    card = await harness.card(ticket.reference)
    assert buttons(card)["🤝 Направить эксперту"] == f"st:ref:{ticket.reference}"

    stranger = {"id": 999, "first_name": "Mallory"}
    await api.push_callback_query(
        STAFF_CHAT, f"st:rx:{ticket.reference}:0", message_id=card["message_id"], user=stranger
    )
    refusal = await api.wait_for_call("answerCallbackQuery", lambda c: bool(c.params.get("text")))
    assert refusal.params["show_alert"] is True and not await referrals(harness)

    await api.push_callback_query(
        STAFF_CHAT, f"st:ref:{ticket.reference}", message_id=card["message_id"], user=STAFF_USER
    )
    picker = await api.wait_for_call("editMessageReplyMarkup")
    offered = [b for row in picker.params["reply_markup"]["inline_keyboard"] for b in row]
    assert offered[0]["callback_data"] == f"st:rx:{ticket.reference}:0"
    await api.push_callback_query(
        STAFF_CHAT, offered[0]["callback_data"], message_id=card["message_id"], user=STAFF_USER
    )
    [referral] = await harness.until(lambda: _made(harness))
    assert referral.created_by == "telegram:@aziza_tscc"
    await harness.until(lambda: _card_says(harness, card["message_id"], f"{referral.expert_id}: offered"))


async def _made(harness: Harness) -> list[Referral] | None:
    return await referrals(harness) or None


async def _card_says(harness: Harness, message_id: int, fragment: str) -> bool:
    message = harness.api.message(STAFF_CHAT, message_id)
    return message is not None and fragment in message["text"]
