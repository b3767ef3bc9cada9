"""An expert's answer to an offer, pressed under it (Telegram): the real PTB client against the Bot API
stand-in, the desk on SQLite and PostgreSQL. The expert's press is recorded as a one-click link's answer is,
once; a stranger's or the requester's press, a forged referral and a second press change nothing. Attacks
first."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from telegram_harness import Harness, open_harness
from test_consent_buttons import _answered, _buttons, _referral

from bot.composer import EXPERT, TelegramComposer, answer_data
from helpdesk.composer import ExpertLetter
from helpdesk.db.models import Referral
from helpdesk.desk import Desk
from helpdesk.messages import Sender
from helpdesk.usecases import self_service
from helpdesk.usecases.referrals import refer
from helpdesk.usecases.roster import load_roster
from knowledge.models import Expert

TG_EXPERT = 4951
EXPERT_USER = {"id": TG_EXPERT, "first_name": "Bobur", "language_code": "ru"}
REQUESTER_CHAT = 4952
REQUESTER = {"id": REQUESTER_CHAT, "first_name": "Dilnoza", "language_code": "ru"}
STRANGER = {"id": 4959, "first_name": "Mallory"}


@pytest.fixture
async def harness(desk: Desk) -> AsyncIterator[Harness]:
    async with open_harness(desk) as opened:
        yield opened


async def _offered(harness: Harness) -> tuple[Referral, dict[str, Any]]:
    """A Telegram request referred to an expert who has started the bot, and the offer they got."""
    await harness.api.push_message(
        REQUESTER_CHAT, "Нужна помощь с пространственным планированием (цель 1)", user=REQUESTER
    )
    await harness.sent_to(REQUESTER_CHAT)
    [ticket] = await harness.tickets()
    expert = Expert(
        id="tg-1",
        name="Example Expert",
        organisation="Example Uzbek Institute",
        languages=("ru", "uz"),
        targets=(1,),
        telegram_id=TG_EXPERT,
    )
    await load_roster(harness.desk, (expert,), actor="test")
    await self_service.profile(harness.desk, Sender(telegram_user_id=TG_EXPERT, telegram_chat_id=TG_EXPERT))
    await refer(harness.desk, ticket.reference, ["tg-1"], message="Could you help?", actor="cli:t")
    harness.desk.outbox_written()
    [offer] = await harness.sent_to(TG_EXPERT)
    return await _referral(harness.desk), offer


async def test_the_offer_offers_yes_and_no_and_the_expert_s_yes_accepts(harness: Harness) -> None:
    referral, offer = await _offered(harness)
    assert referral.channel == "telegram" and referral.state == "offered"
    pressed = [b["callback_data"] for b in _buttons(offer)]
    assert pressed == [answer_data(EXPERT, referral.id, "yes"), answer_data(EXPERT, referral.id, "no")]
    assert [b["text"] for b in _buttons(offer)] == ["✅ Да, могу помочь", "Нет, не могу"]

    await harness.api.push_callback_query(
        TG_EXPERT, pressed[0], message_id=offer["message_id"], user=EXPERT_USER
    )
    await harness.api.wait_for_call("editMessageReplyMarkup")  # the buttons go once it is recorded
    referral = await _referral(harness.desk)
    assert referral.state == "accepted" and referral.answered_at is not None
    [accepted] = await harness.audit("referral_accepted")
    assert accepted.actor == "expert:tg-1"


async def test_a_stranger_s_or_the_requester_s_press_a_forged_referral_and_a_second_press_change_nothing(
    harness: Harness,
) -> None:
    referral, offer = await _offered(harness)
    api = harness.api
    yes, no = (answer_data(EXPERT, referral.id, a) for a in ("yes", "no"))
    # Someone else who forged the button's data in their own chat: the stranger, the requester themself.
    await api.push_message(STRANGER["id"], "привет", user=STRANGER)
    await harness.sent_to(STRANGER["id"])
    for chat, user in ((STRANGER["id"], STRANGER), (REQUESTER_CHAT, REQUESTER)):
        answered = len(api.calls_to("answerCallbackQuery"))
        await api.push_callback_query(chat, yes, user=user)
        await harness.until(lambda n=answered: _answered(harness, n + 1))
        assert api.calls_to("answerCallbackQuery")[-1].params.get("show_alert") is True
    # Forged data: a referral that does not exist, a third answer, garbage.
    for data in (
        answer_data(EXPERT, referral.id + 1000, "yes"),
        answer_data(EXPERT, referral.id, "maybe"),
        "ex:1x:no",
    ):
        answered = len(api.calls_to("answerCallbackQuery"))
        await api.push_callback_query(TG_EXPERT, data, message_id=offer["message_id"], user=EXPERT_USER)
        await harness.until(lambda n=answered: _answered(harness, n + 1))
    assert (await _referral(harness.desk)).state == "offered"

    # The expert's no, then a yes pressed on the same offer: the no stands.
    await api.push_callback_query(TG_EXPERT, no, message_id=offer["message_id"], user=EXPERT_USER)
    await api.wait_for_call("editMessageReplyMarkup")
    answered = len(api.calls_to("answerCallbackQuery"))
    await api.push_callback_query(TG_EXPERT, yes, message_id=offer["message_id"], user=EXPERT_USER)
    await harness.until(lambda: _answered(harness, answered + 1))
    assert (await _referral(harness.desk)).state == "declined"
    assert await harness.audit("referral_accepted") == []


def test_offers_and_reminders_carry_the_buttons_an_introduction_none() -> None:
    composer = TelegramComposer()
    for kind, buttons in (("offer", 2), ("reminder", 2), ("introduction", 0)):
        letter = ExpertLetter(
            kind=kind,
            referral_id=7,
            recipient=str(TG_EXPERT),
            language="en",
            reference="TSCC-2026-0007",
            tag="TSCC-2026-0007 R7",
            summary="Spatial planning",
            contact={"Name": "Dilnoza"} if kind == "introduction" else None,
        )
        sent = composer.expert(letter, mail_domain="tscc.example.org")
        assert len(_buttons(sent.extra)) == buttons, kind
        if buttons:
            assert [b["text"] for b in _buttons(sent.extra)] == ["✅ Yes, I can help", "No, I cannot"]
